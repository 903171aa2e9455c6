#!/usr/bin/env bash
# A real two-node SLURM cluster on this one machine, for the `slurm` tests (`make slurm`).
#
# Installs Debian's slurmctld, slurmd and munge (plus slurmdbd and MariaDB for accounting,
# so `sacct` knows how jobs ended), writes a configuration of $SLURM_NODES virtual nodes
# (fracturelit1, fracturelit2, ...: one core each and an equal share of the memory
# `slurmd -C` reports), starts the daemons directly (containers have no systemd): one
# `slurmd -N <node>` per node, each on its own port with its own pid file, log and spool
# folder (Debian's slurmd is built with multiple-slurmd support), and waits until `sinfo`
# shows every node idle. The node names resolve to the loopback (/etc/hosts): Lightning
# takes the DDP master address from the job's first node name. Idempotent: when the
# cluster is already up with this configuration it returns in about a second; a cluster
# of another shape (the earlier one-node one) is reconfigured and restarted.
#
# Environment:
#   SLURM_ACCOUNTING=auto|none   auto (default): slurmdbd + MariaDB; if that cannot start,
#                                the cluster still comes up with the job completion log
#                                (/var/log/slurm/jobcomp.log) as the scheduler's record.
#   SLURM_PARTITION=debug        name of the one partition.
#   SLURM_NODES=2                number of virtual nodes.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
    if command -v sudo > /dev/null; then
        exec sudo -E bash "$0" "$@"
    fi
    echo "make slurm: needs root (or sudo) to install and start slurmctld/slurmd/munge." >&2
    exit 1
fi

ACCOUNTING=${SLURM_ACCOUNTING:-auto}
PARTITION=${SLURM_PARTITION:-debug}
NODE_COUNT=${SLURM_NODES:-2}
CLUSTER=fracturelit
NODE_PREFIX=fracturelit
FIRST_SLURMD_PORT=6821
CONF_DIR=/etc/slurm
LOG_DIR=/var/log/slurm
JOBCOMP_LOG=$LOG_DIR/jobcomp.log
DB_PASS_FILE=$CONF_DIR/.slurmdbd_db_password
started=$(date +%s)

say() { echo "[make slurm] $*"; }
running() { pgrep -x "$1" > /dev/null; }

# Start a daemon detached from this shell (setsid, no inherited stdio) so it outlives it.
spawn() { setsid "$@" < /dev/null > /dev/null 2>&1 & }

wait_for() { # wait_for <seconds> <description> <command...>
    local limit=$1 what=$2
    shift 2
    for _ in $(seq 1 "$((limit * 2))"); do
        if "$@" > /dev/null 2>&1; then return 0; fi
        sleep 0.5
    done
    echo "make slurm: $what did not come up within ${limit}s; see $LOG_DIR/*.log" >&2
    return 1
}

# ---------------------------------------------------------------- packages
need=()
command -v slurmctld > /dev/null || need+=(slurmctld)
command -v slurmd > /dev/null || need+=(slurmd)
command -v munged > /dev/null || need+=(munge)
command -v sinfo > /dev/null || need+=(slurm-client)
if [ "$ACCOUNTING" = auto ]; then
    command -v slurmdbd > /dev/null || need+=(slurmdbd)
    command -v mariadbd > /dev/null || need+=(mariadb-server)
fi
if [ ${#need[@]} -gt 0 ]; then
    say "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends "${need[@]}" > /tmp/slurm_apt.log 2>&1 || {
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${need[@]}" > /tmp/slurm_apt.log 2>&1
    } || { cat /tmp/slurm_apt.log >&2; exit 1; }
fi
if [ "$ACCOUNTING" = auto ] && ! command -v slurmdbd > /dev/null; then
    say "slurmdbd/MariaDB unavailable: the job completion log is the scheduler's record"
    ACCOUNTING=none
fi

mkdir -p "$CONF_DIR" "$LOG_DIR" /var/spool/slurmctld /var/spool/slurmd /run/slurm

# ---------------------------------------------------------------- munge
if [ ! -s /etc/munge/munge.key ]; then
    say "creating the munge key"
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
fi
chown munge:munge /etc/munge /etc/munge/munge.key
chmod 0700 /etc/munge
chmod 0400 /etc/munge/munge.key
mkdir -p /run/munge /var/lib/munge /var/log/munge
chown munge:munge /run/munge /var/lib/munge /var/log/munge
chmod 0755 /run/munge
if ! munge -n 2> /dev/null | unmunge > /dev/null 2>&1; then
    pkill -x munged 2> /dev/null || true
    rm -f /run/munge/munge.socket.2*
    say "starting munged"
    setsid runuser -u munge -- /usr/sbin/munged < /dev/null > /dev/null 2>&1
    wait_for 20 munged bash -c 'munge -n | unmunge'
fi

# ---------------------------------------------------------------- accounting (slurmdbd)
if [ "$ACCOUNTING" = auto ]; then
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
    if [ ! -d /var/lib/mysql/mysql ]; then
        say "initialising MariaDB"
        mariadb-install-db --user=mysql --datadir=/var/lib/mysql > /dev/null
    fi
    if ! mariadb-admin ping > /dev/null 2>&1; then
        say "starting MariaDB"
        spawn /usr/sbin/mariadbd --user=mysql --datadir=/var/lib/mysql \
            --socket=/run/mysqld/mysqld.sock --bind-address=127.0.0.1 --skip-name-resolve \
            --innodb-buffer-pool-size=256M --innodb-lock-wait-timeout=900 \
            --log-error="$LOG_DIR/mariadb.log"
        wait_for 60 MariaDB mariadb-admin ping || ACCOUNTING=none
    fi
fi
if [ "$ACCOUNTING" = auto ]; then
    [ -s "$DB_PASS_FILE" ] || head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$DB_PASS_FILE"
    chmod 600 "$DB_PASS_FILE"
    db_pass=$(cat "$DB_PASS_FILE")
    mariadb -u root <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$db_pass';
ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$db_pass';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
SQL
    dbd_conf=$(
        cat <<EOF
# Written by fracture_lit's .ci/slurm_up.sh (make slurm).
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=/run/slurm/slurmdbd.pid
LogFile=$LOG_DIR/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=$db_pass
EOF
    )
    if [ "$dbd_conf" != "$(cat $CONF_DIR/slurmdbd.conf 2> /dev/null)" ]; then
        echo "$dbd_conf" > $CONF_DIR/slurmdbd.conf
        pkill -x slurmdbd 2> /dev/null && sleep 1 || true
    fi
    chmod 600 $CONF_DIR/slurmdbd.conf
    if ! running slurmdbd; then
        say "starting slurmdbd"
        spawn /usr/sbin/slurmdbd
        # It listens once it has created its tables.
        wait_for 60 slurmdbd bash -c 'echo > /dev/tcp/127.0.0.1/6819' || ACCOUNTING=none
    fi
fi

# ---------------------------------------------------------------- slurm.conf
host=$(hostname -s)
nodes=()
for i in $(seq 1 "$NODE_COUNT"); do nodes+=("$NODE_PREFIX$i"); done
node_range="$NODE_PREFIX[1-$NODE_COUNT]"
[ "$NODE_COUNT" -gt 1 ] || node_range=${nodes[0]}
# This machine as slurmd sees it; each node declares one core and an equal share of the
# memory (declaring less than the hardware has is allowed: the node registers as is).
real_mem=$(slurmd -C | head -1 | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
node_mem=$((real_mem / NODE_COUNT))
node_lines=""
for i in $(seq 1 "$NODE_COUNT"); do
    node_lines+="NodeName=${nodes[$((i - 1))]} NodeHostname=$host NodeAddr=127.0.0.1"
    node_lines+=" Port=$((FIRST_SLURMD_PORT + i - 1)) CPUs=1 Boards=1 SocketsPerBoard=1"
    node_lines+=" CoresPerSocket=1 ThreadsPerCore=1 RealMemory=$node_mem State=UNKNOWN"$'\n'
done
if [ "$ACCOUNTING" = auto ]; then
    accounting="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30"
else
    accounting="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"
fi
conf=$(
    cat <<EOF
# $NODE_COUNT-node cluster on one machine for fracture_lit's tests, written by
# .ci/slurm_up.sh (make slurm).
ClusterName=$CLUSTER
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
# No cgroups in a container: track processes by parent id, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$node_mem
ReturnToService=2
JobRequeue=1
# A requeued or cancelled job gets this long between SIGTERM and SIGKILL to checkpoint.
KillWait=30
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
StateSaveLocation=/var/spool/slurmctld
# One slurmd per node on this machine (slurmd -N <node>): %n keeps their files apart.
SlurmdPidFile=/run/slurm/slurmd-%n.pid
SlurmdLogFile=$LOG_DIR/slurmd-%n.log
SlurmdSpoolDir=/var/spool/slurmd/%n
# The scheduler's own record of every finished job (state, exit code, times), kept even
# without slurmdbd.
JobCompType=jobcomp/filetxt
JobCompLoc=$JOBCOMP_LOG
$accounting
${node_lines%$'\n'}
PartitionName=$PARTITION Nodes=$node_range Default=YES MaxTime=INFINITE State=UP
EOF
)

# ---------------------------------------------------------------- node names -> loopback
# Lightning's SLURM environment takes the DDP master address from the first node name.
for node in "${nodes[@]}"; do
    if [ "$(getent hosts "$node" | awk '{print $1; exit}')" != 127.0.0.1 ]; then
        say "adding '127.0.0.1 $node' to /etc/hosts"
        echo "127.0.0.1 $node  # fracture_lit: make slurm" >> /etc/hosts
    fi
done

restart=0
if [ "$conf" != "$(cat $CONF_DIR/slurm.conf 2> /dev/null)" ]; then
    say "writing $CONF_DIR/slurm.conf ($NODE_COUNT nodes on $host: 1 CPU and ${node_mem} MB each)"
    echo "$conf" > $CONF_DIR/slurm.conf
    restart=1
fi
if [ "$ACCOUNTING" = auto ] && ! sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER"; then
    sacctmgr -i add cluster "$CLUSTER" > /dev/null
fi
if [ "$restart" = 1 ]; then
    pkill -x slurmctld 2> /dev/null || true
    pkill -x slurmd 2> /dev/null || true
    for _ in $(seq 1 20); do running slurmctld || running slurmd || break; sleep 0.5; done
fi
if ! running slurmctld; then
    say "starting slurmctld"
    spawn /usr/sbin/slurmctld -i
fi
wait_for 30 slurmctld scontrol ping
slurmd_running() { pgrep -f "^/usr/sbin/slurmd -N $1\$" > /dev/null; }
for node in "${nodes[@]}"; do
    mkdir -p "/var/spool/slurmd/$node"
    if ! slurmd_running "$node"; then
        say "starting slurmd -N $node"
        spawn /usr/sbin/slurmd -N "$node"
    fi
done

node_states() { sinfo -h -N -o '%N %t' 2> /dev/null | sort -u; }
nodes_idle() {
    local states
    states=$(node_states)
    for node in "${nodes[@]}"; do
        grep -Eq "^$node (idle|mix|alloc)" <<< "$states" || return 1
    done
}
if ! wait_for 30 "nodes ${nodes[*]}" nodes_idle; then
    # A node that was down (an earlier slurmd died) needs telling that it is back.
    scontrol update nodename="$node_range" state=resume 2> /dev/null || true
    wait_for 30 "nodes ${nodes[*]}" nodes_idle
fi
mode="accounting: slurmdbd (sacct)"
[ "$ACCOUNTING" = auto ] || mode="accounting: job completion log $JOBCOMP_LOG"
say "cluster up in $(($(date +%s) - started))s: nodes $node_range" \
    "($(node_states | awk '{print $2}' | sort | uniq -c | xargs)), partition $PARTITION, $mode"
sinfo
