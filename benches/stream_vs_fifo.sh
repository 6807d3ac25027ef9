#!/usr/bin/env bash
# Moves the same file through `shmq send | shmq recv` and through a named FIFO (mkfifo),
# alternating, and prints each time and the medians. Usage:
#   cargo build --release && bash benches/stream_vs_fifo.sh [SIZE_MIB] [RUNS]
set -euo pipefail
size=${1:-1024}
runs=${2:-5}
shmq=${SHMQ:-target/release/shmq}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
head -c "$((size * 1024 * 1024))" /dev/urandom > "$dir/big"
cat "$dir/big" > /dev/null # warm the page cache for both
mkfifo "$dir/fifo"
now() { date +%s.%N; }
declare -a s f
for i in $(seq "$runs"); do
    t0=$(now)
    "$shmq" recv "stream-vs-fifo-$$" > /dev/null &
    "$shmq" send "stream-vs-fifo-$$" < "$dir/big"
    wait
    t1=$(now)
    cat "$dir/fifo" > /dev/null &
    cat "$dir/big" > "$dir/fifo"
    wait
    t2=$(now)
    s+=("$(echo "$t1 - $t0" | bc)")
    f+=("$(echo "$t2 - $t1" | bc)")
    printf 'run %d: shmq %.3f s, fifo %.3f s\n' "$i" "${s[-1]}" "${f[-1]}"
done
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
ms=$(median "${s[@]}")
mf=$(median "${f[@]}")
printf '%d MiB, median of %d: shmq %.3f s, fifo %.3f s, shmq %.1fx faster (%d cores)\n' \
    "$size" "$runs" "$ms" "$mf" "$(echo "$mf / $ms" | bc -l)" "$(nproc)"
