#!/usr/bin/env bash
# A single-node Slurm cluster on this host, for `make test-slurm` (tests/test_slurm_cluster.py) and for
# trying the slurm profile without a real cluster. Debian/Ubuntu, as root.
#
#   scripts/slurm-provision.sh [up]     install (if sbatch is absent) munge + slurmctld + slurmd + slurm-client
#                                       from the distribution's packages, write /etc/slurm/slurm.conf for this
#                                       host, start munged, slurmctld, slurmd, wait until `sinfo` shows the node idle
#   scripts/slurm-provision.sh down     stop the daemons that `up` started (their pids are in $STATE), nothing else;
#                                       with no controller left running, park our slurm.conf (park_conf)
#   ... up --started FILE / down --started FILE: `up` lists in FILE the daemons it started this time, `down`
#                                       stops only those (`make test-slurm` leaves a cluster it found running)
#   scripts/slurm-provision.sh status   the node as sinfo shows it, and which daemons this script started
#
# Idempotent: `up` on a running cluster starts nothing; `down` twice stops nothing the second time. A host
# whose slurm.conf was not written by this script is a real cluster: `up` only checks that it answers.
# No accounting (no slurmdbd): AccountingStorageType=accounting_storage/none, so `sacct` answers nothing and the
# profile's status queries use squeue (workflow/rules/common.smk detects it; docs/cluster.md).
# Partition: $ILR_SLURM_PARTITION (default `ilr`), the node's CPUs and memory from `slurmd -C`.
set -euo pipefail

PARTITION=${ILR_SLURM_PARTITION:-ilr}
CLUSTER=${ILR_SLURM_CLUSTER:-ilr-local}
STATE=${ILR_SLURM_STATE:-/var/lib/ilr-slurm}      # pid files of the daemons this script started
CONF=${ILR_SLURM_CONF:-/etc/slurm/slurm.conf}     # where Slurm reads it (tests point SLURM_CONF and this elsewhere)
MARK="# written by ilr-repro scripts/slurm-provision.sh"
WAIT=${ILR_SLURM_WAIT:-60}                          # seconds to wait for the node to come up

log() { echo "slurm-provision: $*" >&2; }
die() { log "$*"; exit 1; }

ours_conf() { [ -f "$CONF" ] && head -1 "$CONF" | grep -qF "$MARK"; }

node_state() { sinfo -h -N -o '%t' 2>/dev/null | head -1; }

# a pid file of ours whose process is alive and is the daemon it names
alive() {
    local name=$1 f="$STATE/$1.pid" pid
    [ -f "$f" ] || return 1
    pid=$(cat "$f")
    [ -n "$pid" ] && [ -d "/proc/$pid" ] && [ "$(cat /proc/$pid/comm 2>/dev/null)" = "$name" ]
}

install_packages() {
    command -v apt-get >/dev/null || die "sbatch is absent and there is no apt-get: install Slurm yourself"
    log "installing munge, slurmctld, slurmd, slurm-client (Debian packages)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends munge slurmctld slurmd slurm-client >/dev/null
}

write_conf() {
    local host node cpus mem
    host=$(hostname -s)
    node=$(slurmd -C | head -1)                     # NodeName=<host> CPUs=.. Boards=.. ... RealMemory=..
    cpus=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$node")
    mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node")
    mem=$(( mem * 95 / 100 ))                       # slack: slurmd drains a node that reports less than it claims
    mkdir -p /etc/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm
    cat > "$CONF.new" <<CONF
$MARK (single node, no accounting)
ClusterName=$CLUSTER
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
# a requeued job may start again after cred_expire seconds (default 120): short on a test node
AuthInfo=cred_expire=10
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=5,sched_interval=5
ReturnToService=2
# finished jobs stay visible to squeue for 5 minutes: the slurm executor plugin polls at most every 180 s
MinJobAge=300
KillWait=30
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
    if [ -f "$CONF" ] && cmp -s "$CONF" "$CONF.new"; then rm -f "$CONF.new"; return; fi
    if alive slurmctld || alive slurmd; then
        log "$CONF changes: restarting the daemons this script started"
        STARTED= down
    fi
    mv "$CONF.new" "$CONF"
    log "wrote $CONF (node $host, $cpus CPUs, $mem MB, partition $PARTITION)"
}

start() {   # start <name> <pid file> <command...>: run a daemon unless it runs already; record its pid
    local name=$1 pidfile=$2; shift 2
    if alive "$name"; then return; fi
    if pgrep -x "$name" >/dev/null; then
        log "$name runs already, not started by this script: leaving it alone"
        return
    fi
    rm -f "$pidfile"
    "$@"
    local i
    for i in $(seq 50); do [ -s "$pidfile" ] && break; sleep 0.1; done
    [ -s "$pidfile" ] || die "$name did not start (see /var/log/slurm/ or /var/log/munge/)"
    mkdir -p "$STATE"
    cat "$pidfile" > "$STATE/$name.pid"
    [ -z "$STARTED" ] || echo "$name" >> "$STARTED"
    log "started $name (pid $(cat "$STATE/$name.pid"))"
}

up() {
    if ! command -v sbatch >/dev/null; then
        [ "$(id -u)" = 0 ] || die "sbatch is absent: installing Slurm needs root"
        install_packages
    fi
    if [ -f "$CONF" ] && ! ours_conf; then
        [ -n "$(node_state)" ] || die "$CONF exists but was not written by this script, and sinfo does not answer"
        log "a cluster of its own ($CONF): not touching it"; sinfo; return
    fi
    [ "$(id -u)" = 0 ] || die "writing $CONF and starting the daemons needs root"
    write_conf
    mkdir -p /run/munge && chown munge:munge /run/munge
    [ -s /etc/munge/munge.key ] || { mungekey --create 2>/dev/null || create-munge-key; }
    start munged /run/munge/munged.pid runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
    start slurmctld /run/slurmctld.pid /usr/sbin/slurmctld
    start slurmd /run/slurmd.pid /usr/sbin/slurmd
    local i s
    for i in $(seq "$WAIT"); do
        s=$(node_state)
        case "$s" in
            idle|mix|alloc) log "node $s"; sinfo; return ;;
            down*|drain*|drng*) scontrol update nodename="$(hostname -s)" state=resume 2>/dev/null || true ;;
        esac
        sleep 1
    done
    sinfo || true
    die "the node did not become idle in ${WAIT}s (state: ${s:-none}); logs in /var/log/slurm/"
}

# A conf of ours whose controller is stopped makes every Slurm command on this host retry it for MessageTimeout
# (~9 s) before failing, and Snakemake's slurm executor plugin runs `scontrol show config` whenever snakemake starts,
# slurm profile or not: 9 s more of every snakemake command (the demo, the tests) after `make test-slurm`. Parked
# instead: a conf that names no controller, on which Slurm's commands fail at once; `up` writes the real one again.
park_conf() {
    ours_conf || return 0
    if pgrep -x slurmctld >/dev/null; then return 0; fi
    printf '%s (parked: the cluster is down; `%s up` starts it)\nClusterName=%s\n' "$MARK" "$0" "$CLUSTER" > "$CONF"
    log "parked $CONF: no controller named, Slurm commands fail at once until \`up\`"
}

down() {
    local name pid i
    for name in slurmd slurmctld munged; do
        if [ -n "$STARTED" ] && ! grep -qx "$name" "$STARTED" 2>/dev/null; then continue; fi
        alive "$name" || { rm -f "$STATE/$name.pid"; continue; }
        pid=$(cat "$STATE/$name.pid")
        kill "$pid"
        for i in $(seq 100); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
        [ -d "/proc/$pid" ] && { log "$name (pid $pid) ignores SIGTERM: SIGKILL"; kill -9 "$pid"; }
        rm -f "$STATE/$name.pid"
        log "stopped $name (pid $pid)"
    done
    park_conf
}

status() {
    local name
    for name in munged slurmctld slurmd; do
        if alive "$name"; then echo "$name: running (pid $(cat "$STATE/$name.pid")), started by this script"
        elif pgrep -x "$name" >/dev/null; then echo "$name: running, not started by this script"
        else echo "$name: not running"; fi
    done
    command -v sinfo >/dev/null && sinfo 2>&1 || echo "sinfo: absent"
}

CMD=${1:-up}; shift || true
STARTED=
if [ "${1:-}" = --started ]; then STARTED=${2:?--started FILE}; fi

case "$CMD" in
    up|start) up ;;
    down|stop) down ;;
    status) status ;;
    *) die "usage: $0 [up|down|status]" ;;
esac
