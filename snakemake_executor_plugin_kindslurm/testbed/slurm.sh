#!/usr/bin/env bash
# Single-node Slurm (with accounting) test bed for snakemake-executor-plugin-kindslurm.
#
# It targets throw-away machines: CI runners (GitHub Actions Debian/Ubuntu) and
# developer VMs or containers where PID 1 is often not systemd. So every daemon is
# started by hand, detached with setsid, and tracked through pidfiles rather than
# through an init system. Run as root. See `slurm.sh --help`.
set -euo pipefail

# Root's PATH lacks the sbin directories (where the daemons live) after a plain
# `su` on Debian and in some CI shells.
export PATH="${PATH:+$PATH:}/usr/local/sbin:/usr/sbin:/sbin"

# All mutable state lives below these three folders (plus the Debian default
# config paths, so that plain `sbatch` works without SLURM_CONF).
readonly STATE_DIR=/var/lib/kindslurm-testbed
readonly LOG_DIR=/var/log/kindslurm-testbed
readonly RUN_DIR=/run/kindslurm-testbed
readonly SLURM_ETC=/etc/slurm
readonly SLURM_CONF=$SLURM_ETC/slurm.conf
readonly SLURMDBD_CONF=$SLURM_ETC/slurmdbd.conf
readonly CGROUP_CONF=$SLURM_ETC/cgroup.conf
readonly MUNGE_KEY=/etc/munge/munge.key
# munge clients (libslurm, the munge CLI) only look at the compiled-in socket path,
# so munged keeps its default socket instead of moving into RUN_DIR.
readonly MUNGE_SOCKET_DIR=/run/munge

readonly DB_DIR=$STATE_DIR/mariadb
readonly DB_DATA=$DB_DIR/data
readonly DB_CNF=$STATE_DIR/mariadb.cnf
readonly DB_RUN=$RUN_DIR/mariadb
readonly DB_PASS_FILE=$STATE_DIR/slurmdbd.dbpass
# 3306 is left alone: installing mariadb-server on a systemd runner already starts
# the distribution's own server there.
readonly DB_PORT=${KINDSLURM_TESTBED_DB_PORT:-3307}

readonly CLUSTER=kindslurm
readonly ACCOUNT=kindslurm
readonly OTHER_ACCOUNT=other
readonly PACKAGES=(slurm-wlm slurmdbd slurm-client munge mariadb-server)
# Upper bound for each readiness wait; a cold start takes a few seconds, slow CI
# disks can need much more for the first slurmdbd schema creation.
readonly TIMEOUT=${KINDSLURM_TESTBED_TIMEOUT:-90}
# Stop order; start order is the reverse (each one needs the ones after it).
readonly DAEMONS=(slurmd slurmctld slurmdbd mariadbd munged)

PROG=$(basename "$0")
readonly PROG

usage() {
    cat <<EOF
Usage: $PROG COMMAND

A single-node Slurm cluster "$CLUSTER" with accounting (slurmdbd + a private
MariaDB on 127.0.0.1:$DB_PORT), started without systemd. Must run as root.

Commands:
  install        install the Debian/Ubuntu packages that are missing of:
                 ${PACKAGES[*]}
  start          configure and start munged, mariadbd, slurmdbd, slurmctld, slurmd
                 (idempotent: running daemons are kept; changed configs restart them)
  add-user NAME  create Linux user NAME (useradd -m) if missing and register it in
                 accounting (accounts $ACCOUNT [default] and $OTHER_ACCOUNT)
  stop           stop all daemons of the test bed (keeps config and data)
  status         show which daemons run; exit status 0 only if all do
  -h, --help     show this help

Partitions: debug (default, no time limit), short (MaxTime 10 min).
Accounts: $ACCOUNT (root's default), $OTHER_ACCOUNT.

Files: configs in $SLURM_CONF, $SLURMDBD_CONF, $CGROUP_CONF;
state in $STATE_DIR; logs in $LOG_DIR; pidfiles in $RUN_DIR.

Environment: KINDSLURM_TESTBED_DB_PORT (default 3307),
KINDSLURM_TESTBED_TIMEOUT (seconds per readiness wait, default 90).
EOF
}

# Milliseconds since the epoch (EPOCHREALTIME needs bash 5; older: whole seconds).
now_ms() {
    local t=${EPOCHREALTIME:-}
    if [[ -n $t ]]; then
        t=${t/[.,]/}
        printf '%s\n' "$((10#$t / 1000))"
    else
        printf '%s\n' "$(($(date +%s) * 1000))"
    fi
}

say() { printf '%s: %s\n' "$PROG" "$*" >&2; }

die() {
    say "error: $*"
    exit 1
}

need_root() {
    [[ $(id -u) -eq 0 ]] || die "must run as root (daemons, /etc and useradd need it)"
}

need_cmds() {
    local c missing=()
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || missing+=("$c")
    done
    if ((${#missing[@]})); then
        die "missing commands: ${missing[*]} (run: $0 install)"
    fi
}

# ---------------------------------------------------------------------------
# install

cmd_install() {
    need_root
    local p missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$p")
    done
    if ((${#missing[@]} == 0)); then
        say "packages already installed: ${PACKAGES[*]}"
        return 0
    fi
    say "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Fresh images (e.g. docker debian:12) ship without package lists; only pay
    # for the update when something is actually missing.
    apt-get update -qq
    # Recommends would pull in mail servers and X11 bits the test bed never uses.
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# ---------------------------------------------------------------------------
# process bookkeeping

pidfile_of() { printf '%s/%s.pid\n' "$RUN_DIR" "$1"; }

pid_alive() {
    # A zombie still has a /proc entry but is as good as gone.
    [[ -e /proc/$1 && $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]
}

pidfile_pid() {
    local pid
    pid=$(cat "$(pidfile_of "$1")" 2>/dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    printf '%s\n' "$pid"
}

# Prints the PID of daemon $1 if the pidfile points at a live process with the
# expected command name; a recycled PID of some other program does not count.
daemon_pid() {
    local name=$1 pid comm
    pid=$(pidfile_pid "$name") || return 1
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    case "$name:$comm" in
        mariadbd:mariadbd | mariadbd:mysqld) ;;
        "$name:$name") ;;
        *) return 1 ;;
    esac
    pid_alive "$pid" || return 1
    printf '%s\n' "$pid"
}

daemon_running() { daemon_pid "$1" >/dev/null; }

# munged may also come from the distribution (systemd starts it on package
# install on Ubuntu/Debian runners). A working munge socket is all Slurm needs,
# so such a munged is used as is and never stopped by us.
munge_works() {
    munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1
}

# The daemon's own log file.
log_of() {
    case $1 in
        mariadbd) printf '%s/mariadb.err\n' "$LOG_DIR" ;;
        *) printf '%s/%s.log\n' "$LOG_DIR" "$1" ;;
    esac
}

# Where the daemon's stdout/stderr go. The Slurm daemons run with -D, which
# also copies their log to stderr (without timestamps), so NAME.out mostly
# repeats NAME.log; it is kept because errors from before the log file is
# opened (a bad slurm.conf, say) only show up there. munged in the foreground
# logs to stderr only, so that stream is its log.
out_of() {
    case $1 in
        munged) log_of munged ;;
        *) printf '%s/%s.out\n' "$LOG_DIR" "$1" ;;
    esac
}

show_logs() {
    local name=$1 f log out files
    log=$(log_of "$name")
    out=$(out_of "$name")
    files=("$log")
    [[ $out == "$log" ]] || files+=("$out")
    for f in "${files[@]}"; do
        [[ -s $f ]] || continue
        say "---- last lines of $f ----"
        tail -n 25 "$f" >&2
    done
}

# Launches "$@" as daemon $1, detached into its own session: a daemon that
# stays in the caller's session dies with it (seen with MariaDB started by a
# plain `&` from a script). The daemons run in the foreground so that $! is
# their PID. The environment is wiped so that nothing from the caller (a
# Slurm job's SLURM_* variables, a CI's TMPDIR, ...) leaks into the daemons.
# stdin/stdout/stderr are detached, otherwise a caller capturing our output
# (e.g. Python's subprocess.run) would wait for the daemons to exit.
launch() {
    local name=$1
    shift
    local out
    out=$(out_of "$name")
    printf '==== %s: starting %s\n' "$(date '+%F %T')" "$*" >>"$out"
    # 9>&-: the daemons must not inherit (and so hold forever) the lock of
    # with_lock.
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
        setsid "$@" </dev/null >>"$out" 2>&1 9>&- &
    # In a non-interactive shell the child is not a process-group leader, so
    # setsid(1) execs without forking and $! is the daemon itself.
    printf '%s\n' "$!" >"$(pidfile_of "$name")"
}

# wait_until NAME WHAT CMD...: polls CMD until it succeeds; gives up after
# $TIMEOUT seconds or as soon as daemon NAME has died, showing its logs.
wait_until() {
    local name=$1 what=$2 pid
    shift 2
    local end=$((SECONDS + TIMEOUT))
    until "$@" >/dev/null 2>&1; do
        # Only liveness here: right after launch the process may still be
        # the forked shell or a wrapper (env, setsid, setpriv) about to exec.
        if ! pid=$(pidfile_pid "$name") || ! pid_alive "$pid"; then
            show_logs "$name"
            die "$name exited while waiting for: $what"
        fi
        if ((SECONDS >= end)); then
            show_logs "$name"
            die "timed out after ${TIMEOUT}s waiting for: $what"
        fi
        sleep 0.1
    done
}

stop_daemon() {
    local name=$1 pid i
    if ! pid=$(daemon_pid "$name"); then
        rm -f "$(pidfile_of "$name")"
        return 0
    fi
    say "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    # slurmctld saves state and MariaDB flushes InnoDB on TERM; give them time
    # before the hard kill, but never hang.
    for ((i = 0; i < 300; i++)); do
        pid_alive "$pid" || break
        sleep 0.1
    done
    if pid_alive "$pid" && daemon_running "$name"; then
        say "$name did not exit after 30s, sending KILL"
        kill -KILL "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            pid_alive "$pid" || break
            sleep 0.1
        done
    fi
    rm -f "$(pidfile_of "$name")"
}

# write_file PATH MODE OWNER CONTENT: replaces PATH atomically if CONTENT
# differs; sets FILE_CHANGED=1 in that case. (A global instead of the return
# status, because `if f; then` would silently disable `set -e` inside f.)
FILE_CHANGED=0
write_file() {
    local path=$1 mode=$2 owner=$3 content=$4 tmp
    FILE_CHANGED=0
    if [[ -f $path ]] && [[ $(cat "$path") == "$content" ]]; then
        # Keep permissions right even if someone changed them.
        chmod "$mode" "$path"
        chown "$owner" "$path"
        return 0
    fi
    tmp=$(mktemp "$path.XXXXXX")
    printf '%s\n' "$content" >"$tmp"
    chmod "$mode" "$tmp"
    chown "$owner" "$tmp"
    mv -f "$tmp" "$path"
    FILE_CHANGED=1
}

# ---------------------------------------------------------------------------
# host facts

node_name() {
    # slurmd identifies itself by the short host name.
    local h
    h=$(uname -n)
    printf '%s\n' "${h%%.*}"
}

real_memory_mb() {
    # 95%: slurmd drains a node whose detected memory is below RealMemory, and
    # the detected value is a little lower than MemTotal on some kernels.
    awk '/^MemTotal:/ {printf "%d\n", $2 / 1024 * 0.95}' /proc/meminfo
}

# proctrack/cgroup + task/cgroup give real memory limits (OUT_OF_MEMORY), but
# Slurm 22.05 only manages cgroup v1 without systemd (its cgroup/v2 plugin wants
# a systemd scope). A cgroup-v2-only host (most current CI runners, containers)
# therefore gets the plugin-free setup.
have_cgroup_v1() {
    local c
    for c in freezer memory cpuset; do
        awk -v m="/sys/fs/cgroup/$c" '$2 == m && $3 == "cgroup" {found = 1} END {exit !found}' \
            /proc/mounts || return 1
        [[ -w /sys/fs/cgroup/$c ]] || return 1
    done
}

# ---------------------------------------------------------------------------
# configuration

ensure_users() {
    local u
    for u in munge slurm mysql; do
        id -u "$u" >/dev/null 2>&1 && continue
        say "creating system user $u"
        useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$u"
    done
}

prepare_dirs() {
    install -d -m 755 -o root -g root "$STATE_DIR" "$LOG_DIR" "$RUN_DIR" "$SLURM_ETC"
    install -d -m 755 -o slurm -g slurm "$STATE_DIR/slurmctld"
    install -d -m 755 -o root -g root "$STATE_DIR/slurmd" "$STATE_DIR/epilog.d"
    install -d -m 750 -o mysql -g mysql "$DB_DIR" "$DB_RUN"
    # munged refuses to run when its directories are writable by others.
    install -d -m 700 -o munge -g munge /etc/munge /var/lib/munge
    install -d -m 755 -o munge -g munge "$MUNGE_SOCKET_DIR"
    # Daemons that drop privileges (munged, mariadbd, slurmdbd, slurmctld)
    # must be able to open their logs afterwards.
    local f
    for f in mariadb.err:mysql slurmdbd.log:slurm slurmctld.log:slurm slurmd.log:root; do
        touch "$LOG_DIR/${f%%:*}"
        chown "${f#*:}:" "$LOG_DIR/${f%%:*}"
        chmod 640 "$LOG_DIR/${f%%:*}"
    done
}

ensure_munge_key() {
    if [[ ! -s $MUNGE_KEY ]]; then
        say "creating munge key $MUNGE_KEY"
        if command -v mungekey >/dev/null 2>&1; then
            mungekey --create --force --keyfile="$MUNGE_KEY"
        else
            dd if=/dev/urandom of="$MUNGE_KEY" bs=1024 count=1 status=none
        fi
    fi
    chown munge:munge "$MUNGE_KEY"
    chmod 400 "$MUNGE_KEY"
}

db_password() {
    if [[ ! -s $DB_PASS_FILE ]]; then
        # od reads a fixed amount, so no SIGPIPE trouble under pipefail.
        (umask 077 && od -An -tx1 -N16 /dev/urandom | tr -d ' \n' >"$DB_PASS_FILE")
    fi
    cat "$DB_PASS_FILE"
}

mariadbd_bin() {
    command -v mariadbd 2>/dev/null || command -v mysqld 2>/dev/null \
        || { [[ -x /usr/sbin/mariadbd ]] && echo /usr/sbin/mariadbd; } \
        || { [[ -x /usr/sbin/mysqld ]] && echo /usr/sbin/mysqld; } \
        || die "mariadbd not found (run: $0 install)"
}

db_client() {
    local c
    for c in mariadb mysql; do
        command -v "$c" >/dev/null 2>&1 && { "$c" --defaults-file="$DB_CNF" "$@"; return; }
    done
    die "mariadb client not found (run: $0 install)"
}

db_ping() {
    local c
    for c in mariadb-admin mysqladmin; do
        command -v "$c" >/dev/null 2>&1 && { "$c" --defaults-file="$DB_CNF" ping; return; }
    done
    return 1
}

write_configs() {
    local node cpus mem proctrack taskplugin pass cgroup_mode
    node=$(node_name)
    cpus=$(nproc)
    mem=$(real_memory_mb)
    pass=$(db_password)
    if have_cgroup_v1; then
        cgroup_mode=v1
        proctrack=proctrack/cgroup
        taskplugin=task/cgroup
    else
        cgroup_mode=none
        proctrack=proctrack/linuxproc
        taskplugin=task/none
    fi
    CONF_SUMMARY="node $node: CPUs=$cpus RealMemory=${mem}MB, cgroups: $cgroup_mode"

    write_file "$DB_CNF" 644 root: "# Generated by $PROG (kindslurm test bed); rewritten by every start.
# A private server: own datadir, socket and port, so the distribution's MariaDB
# (if any) is left alone.
[mysqld]
user = mysql
datadir = $DB_DATA
socket = $DB_RUN/mariadbd.sock
pid-file = $DB_RUN/mariadbd.pid
log-error = $LOG_DIR/mariadb.err
bind-address = 127.0.0.1
port = $DB_PORT
skip-name-resolve
# slurmdbd warns below 1G.
innodb_buffer_pool_size = 1024M
innodb_lock_wait_timeout = 900
# Throw-away accounting data: trading crash safety for fewer fsyncs makes the
# first start (slurmdbd creates ~30 tables) and each job record faster.
innodb_flush_log_at_trx_commit = 2
innodb_doublewrite = 0

[client]
socket = $DB_RUN/mariadbd.sock
user = root"
    DB_CNF_CHANGED=$FILE_CHANGED

    write_file "$SLURMDBD_CONF" 600 slurm:slurm "# Generated by $PROG (kindslurm test bed); rewritten by every start.
AuthType=auth/munge
# slurmdbd only accepts a DbdHost equal to its own host name or \"localhost\".
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=slurm
LogFile=$LOG_DIR/slurmdbd.log
PidFile=$(pidfile_of slurmdbd)
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$pass
StorageLoc=slurm_acct_db"
    DBD_CONF_CHANGED=$FILE_CHANGED

    write_file "$CGROUP_CONF" 644 root: "# Generated by $PROG (kindslurm test bed); rewritten by every start.
# cgroup mode here: $cgroup_mode. slurmd 22.05 loads this plugin even with
# proctrack/linuxproc + task/none: cgroup/v1 then initialises without any cgroup
# mount, while \"autodetect\" fails when nothing is mounted on /sys/fs/cgroup.
CgroupPlugin=cgroup/v1
ConstrainRAMSpace=yes"
    local cg_changed=$FILE_CHANGED

    # The node's epilog, as sites have one: it runs every executable hook in
    # epilog.d (none unless a test installs one, e.g. the `kindslurm gc`
    # snippet from `kindslurm --help`) and never fails, since a failing
    # epilog drains the node.
    write_file "$STATE_DIR/epilog.sh" 755 root: "#!/bin/sh
# Generated by $PROG (kindslurm test bed); rewritten by every start.
for hook in $STATE_DIR/epilog.d/*; do
    [ -x \"\$hook\" ] && \"\$hook\" >>$LOG_DIR/epilog.log 2>&1
done
exit 0"
    local epilog_changed=$FILE_CHANGED

    write_file "$SLURM_CONF" 644 root: "# Generated by $PROG (kindslurm test bed); rewritten by every start.
ClusterName=$CLUSTER
# NodeAddr/SlurmctldHost addresses avoid depending on the host name resolving.
SlurmctldHost=$node(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=$STATE_DIR/slurmctld
SlurmdSpoolDir=$STATE_DIR/slurmd
SlurmctldPidFile=$(pidfile_of slurmctld)
SlurmdPidFile=$(pidfile_of slurmd)
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
ProctrackType=$proctrack
TaskPlugin=$taskplugin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
# Finished jobs leave squeue quickly; sacct is the record.
MinJobAge=5
# Slurm's default: the time between the TERM and the KILL of a cancelled job is
# what a job's cleanup gets after scancel, so test with what real sites have.
KillWait=30
MailProg=/bin/true
# Runs as root on the node after every job (hooks in $STATE_DIR/epilog.d).
Epilog=$STATE_DIR/epilog.sh
AccountingStorageType=accounting_storage/slurmdbd
# Refuse jobs for accounts the user does not belong to, as production sites do.
AccountingStorageEnforce=associations
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819
JobAcctGatherType=jobacct_gather/linux
# Schedule right away instead of batching (tests submit many tiny jobs).
SchedulerParameters=batch_sched_delay=0,sched_interval=1,bf_interval=1,sched_min_interval=0
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
# short: jobs without --time get 2 minutes there (how a warning-less default looks).
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
PartitionName=short Nodes=$node MaxTime=00:10:00 DefaultTime=00:02:00 State=UP"
    SLURM_CONF_CHANGED=$((FILE_CHANGED | cg_changed | epilog_changed))
}

# ---------------------------------------------------------------------------
# start

start_munged() {
    if daemon_running munged || munge_works; then
        return 0
    fi
    # setpriv execs without forking (unlike runuser/su), keeping $! right.
    launch munged setpriv --reuid=munge --regid=munge --init-groups \
        munged --foreground
    wait_until munged "munged to answer (munge -n | unmunge)" munge_works
}

start_mariadbd() {
    if daemon_running mariadbd; then
        return 0
    fi
    if [[ ! -d $DB_DATA/mysql ]]; then
        say "initialising MariaDB data directory $DB_DATA"
        local installer
        installer=$(command -v mariadb-install-db || command -v mysql_install_db) \
            || die "mariadb-install-db not found (run: $0 install)"
        rm -rf "$DB_DATA"
        install -d -m 750 -o mysql -g mysql "$DB_DATA"
        # --force: without it the installer insists on resolving the host name
        # (fails in minimal containers/chroots without /etc/hosts); the
        # server only ever sees 127.0.0.1 and the socket anyway.
        if ! "$installer" --defaults-file="$DB_CNF" --user=mysql --skip-test-db --force \
            --auth-root-authentication-method=socket >"$LOG_DIR/mariadb-install.out" 2>&1; then
            tail -n 25 "$LOG_DIR/mariadb-install.out" >&2
            die "mariadb-install-db failed (log: $LOG_DIR/mariadb-install.out)"
        fi
    fi
    launch mariadbd "$(mariadbd_bin)" --defaults-file="$DB_CNF"
    wait_until mariadbd "MariaDB to answer on $DB_RUN/mariadbd.sock" db_ping
}

ensure_db_user() {
    local pass u
    pass=$(db_password)
    # Sent on stdin so that the password never shows in a process list.
    {
        echo "CREATE DATABASE IF NOT EXISTS slurm_acct_db;"
        for u in "'slurm'@'localhost'" "'slurm'@'127.0.0.1'"; do
            echo "CREATE USER IF NOT EXISTS $u IDENTIFIED BY '$pass';"
            echo "ALTER USER $u IDENTIFIED BY '$pass';"
            echo "GRANT ALL ON slurm_acct_db.* TO $u;"
        done
    } | db_client --batch
}

start_slurmdbd() {
    daemon_running slurmdbd && return 0
    launch slurmdbd slurmdbd -D
    wait_until slurmdbd "slurmdbd to answer (sacctmgr show cluster)" sacctmgr -n show cluster
}

# Each sacctmgr query costs ~0.2 s and each change ~0.5 s (one slurmdbd commit;
# batching commands on sacctmgr's stdin does not make commits cheaper), so the
# existing setup is read first and what is missing is added with few commands.
ensure_accounting() {
    local assocs a missing=()
    # The common case (everything set up already) costs one query.
    assoc_user_complete root && return 0
    # Every registered cluster has at least the association of account root.
    assocs=$(sacctmgr -n -P show assoc where cluster="$CLUSTER" format=account,user)
    if [[ -z $assocs ]]; then
        sacctmgr -i add cluster "$CLUSTER" >/dev/null
    fi
    for a in "$ACCOUNT" "$OTHER_ACCOUNT"; do
        grep -qx "$a|" <<<"$assocs" || missing+=("$a")
    done
    if ((${#missing[@]})); then
        sacctmgr -i add account "$(join_by , "${missing[@]}")" Cluster="$CLUSTER" \
            Description="kindslurm test bed" Organization=kindslurm >/dev/null
    fi
    ensure_user_assoc root
}

join_by() {
    local IFS=$1
    shift
    printf '%s\n' "$*"
}

# Reads user $1's associations into USER_ROWS (DefaultAccount|Account per
# association) and succeeds if they already are what ensure_user_assoc makes.
USER_ROWS=
assoc_user_complete() {
    local a
    USER_ROWS=$(sacctmgr -n -P show user withassoc where name="$1" cluster="$CLUSTER" \
        format=defaultaccount,account)
    [[ ${USER_ROWS%%|*} == "$ACCOUNT" ]] || return 1
    for a in "$ACCOUNT" "$OTHER_ACCOUNT"; do
        grep -q "|$a\$" <<<"$USER_ROWS" || return 1
    done
}

# Gives user $1 associations with both accounts, $ACCOUNT being the default.
ensure_user_assoc() {
    local user=$1 a missing=()
    assoc_user_complete "$user" && return 0
    for a in "$ACCOUNT" "$OTHER_ACCOUNT"; do
        grep -q "|$a\$" <<<"$USER_ROWS" || missing+=("$a")
    done
    if ((${#missing[@]})); then
        # DefaultAccount here also changes it for a user that already exists.
        sacctmgr -i add user "$user" Account="$(join_by , "${missing[@]}")" \
            DefaultAccount="$ACCOUNT" Cluster="$CLUSTER" >/dev/null
    else
        sacctmgr -i modify user where name="$user" set DefaultAccount="$ACCOUNT" >/dev/null
    fi
}

ctld_up() { scontrol ping 2>/dev/null | grep -q 'is UP'; }

start_slurmctld() {
    daemon_running slurmctld && return 0
    launch slurmctld slurmctld -D
    wait_until slurmctld "slurmctld to answer (scontrol ping)" ctld_up
}

# Base node state as sinfo prints it, e.g. "idle", "down*", "drained".
node_state() { sinfo -h -N -n "$(node_name)" -o %T 2>/dev/null | head -n 1; }

node_responding() {
    local s
    s=$(node_state)
    [[ -n $s && $s != *'*' && $s != unknown* ]]
}

node_usable() {
    case $(node_state) in
        idle | mixed | allocated | completing) return 0 ;;
        *) return 1 ;;
    esac
}

start_slurmd() {
    daemon_running slurmd || launch slurmd slurmd -D
    wait_until slurmd "node $(node_name) to register with slurmctld (sinfo)" node_responding
    if ! node_usable; then
        # A node left DOWN/DRAINED by an earlier run (or a test injecting a
        # failure) would keep every job pending.
        say "node $(node_name) is $(node_state), resuming it"
        scontrol update NodeName="$(node_name)" State=RESUME || true
        wait_until slurmd "node $(node_name) to become idle (sinfo)" node_usable
    fi
}

cmd_start() {
    need_root
    need_cmds munge unmunge setpriv setsid slurmctld slurmd slurmdbd sacctmgr scontrol sinfo
    local t0
    t0=$(now_ms)
    ensure_users
    prepare_dirs
    ensure_munge_key
    write_configs
    say "$CONF_SUMMARY"
    # Daemons keep the config they started with: restart what a rewritten
    # config concerns so that `start` always yields the configuration above.
    if ((SLURM_CONF_CHANGED)) && { daemon_running slurmctld || daemon_running slurmd; }; then
        say "slurm.conf/cgroup.conf changed: restarting slurmctld and slurmd"
        stop_daemon slurmd
        stop_daemon slurmctld
    fi
    if ((DBD_CONF_CHANGED)) && daemon_running slurmdbd; then
        say "slurmdbd.conf changed: restarting slurmdbd"
        stop_daemon slurmdbd
    fi
    if ((DB_CNF_CHANGED)) && daemon_running mariadbd; then
        say "mariadb.cnf changed: restarting mariadbd"
        stop_daemon slurmdbd
        stop_daemon mariadbd
    fi

    start_munged
    start_mariadbd
    ensure_db_user
    start_slurmdbd
    ensure_accounting
    start_slurmctld
    start_slurmd
    say "Slurm test bed is up after $(($(now_ms) - t0)) ms: cluster $CLUSTER, partitions debug (default) and short"
}

# ---------------------------------------------------------------------------
# add-user, stop, status

cmd_add_user() {
    need_root
    local user=${1:-}
    [[ -n $user ]] || die "usage: $PROG add-user NAME"
    [[ $user =~ ^[a-z_][a-z0-9_-]*$ ]] || die "invalid user name: $user"
    sacctmgr -n show cluster >/dev/null 2>&1 || die "slurmdbd does not answer (run: $0 start)"
    if ! id -u "$user" >/dev/null 2>&1; then
        say "creating user $user"
        useradd -m "$user"
    fi
    # Without an association, the user's jobs run but are not accounted
    # properly (sacct does not show them as expected).
    ensure_user_assoc "$user"
    say "user $user registered (default account $ACCOUNT, also $OTHER_ACCOUNT)"
}

cmd_stop() {
    need_root
    local d
    for d in "${DAEMONS[@]}"; do
        stop_daemon "$d"
    done
    say "stopped (config and data kept)"
}

cmd_status() {
    local d pid all=0
    for d in munged mariadbd slurmdbd slurmctld slurmd; do
        if pid=$(daemon_pid "$d"); then
            printf '%-10s running (pid %s)\n' "$d" "$pid"
        elif [[ $d == munged ]] && munge_works; then
            printf '%-10s running (not started by the test bed)\n' "$d"
        else
            printf '%-10s stopped\n' "$d"
            all=1
        fi
    done
    return "$all"
}

# Serialises commands that change state: test suites (e.g. several pytest
# workers) may call `start` at the same time, which would launch every daemon
# twice.
with_lock() {
    need_root
    install -d -m 755 -o root -g root "$RUN_DIR"
    exec 9>"$RUN_DIR/lock"
    flock -w "$TIMEOUT" 9 || die "another $PROG run holds $RUN_DIR/lock"
    "$@"
}

main() {
    local cmd=${1:-}
    (($#)) && shift
    case $cmd in
        install) with_lock cmd_install "$@" ;;
        start) with_lock cmd_start "$@" ;;
        add-user) with_lock cmd_add_user "$@" ;;
        stop) with_lock cmd_stop "$@" ;;
        status) cmd_status "$@" ;;
        -h | --help | help) usage ;;
        "")
            usage >&2
            exit 2
            ;;
        *)
            say "unknown command: $cmd"
            usage >&2
            exit 2
            ;;
    esac
}

main "$@"
