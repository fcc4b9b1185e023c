#!/usr/bin/env bash
# twohost.sh runs recordbench across two hosts simulated on one machine:
# two network namespaces joined by a veth pair whose link is capped with a
# token bucket filter (tc tbf), "recordbench serve" in one and
# "recordbench run -connect" in the other. Everything it creates is
# removed on exit, whatever happens. Traffic stays inside the two
# namespaces it made.
#
# Needs root and iproute2 (ip, tc). netem is not needed (nor used).
#
# Usage (from the repository root):
#
#	sudo bench/scripts/twohost.sh [-- RUN-FLAGS...]
#
# Environment:
#
#	RATE     link rate for tc tbf, each direction (default 1gbit)
#	BURST    tbf bucket size (default 256kb)
#	LIMIT    tbf queue limit in bytes (default 1mb)
#	PREFIX   namespace and interface name prefix (default rb)
#	SUBNET   the /24 of the pair, first three octets (default 10.201.77)
#	OUT      directory for the results (default a fresh temporary one)
#
# RUN-FLAGS go to "recordbench run" after -connect and -pin; without any,
# a small workload runs: throughput (1 KiB, 1 and 10 streams), pingpong
# and loaded-latency for recordmux, framer, grpc and smux, one repetition.
set -euo pipefail

RATE=${RATE:-1gbit}
BURST=${BURST:-256kb}
LIMIT=${LIMIT:-1mb}
PREFIX=${PREFIX:-rb}
SUBNET=${SUBNET:-10.201.77}
NS_SRV="${PREFIX}-srv"
NS_CLI="${PREFIX}-cli"
VETH_SRV="${PREFIX}-vs"
VETH_CLI="${PREFIX}-vc"
SRV_IP="${SUBNET}.1"
CLI_IP="${SUBNET}.2"
PORT=7600

if [[ $(id -u) -ne 0 ]]; then
	echo "twohost.sh: needs root (network namespaces, tc)" >&2
	exit 1
fi
for tool in ip tc go; do
	command -v "$tool" >/dev/null || { echo "twohost.sh: $tool not found" >&2; exit 1; }
done
if [[ ${1:-} == "--" ]]; then
	shift
fi
RUN_FLAGS=("$@")
if [[ ${#RUN_FLAGS[@]} -eq 0 ]]; then
	RUN_FLAGS=(-cases throughput,pingpong,loaded-latency -transports recordmux,framer,grpc,smux
		-sizes 1KiB -streams 1,10 -duration 200ms -reps 1 -pingpongs 200 -loaded-duration 300ms)
fi

WORK=$(mktemp -d)
OUT=${OUT:-$WORK}
mkdir -p "$OUT"
SERVER_PID=""

cleanup() {
	set +e
	if [[ -n $SERVER_PID ]]; then
		kill -INT "$SERVER_PID" 2>/dev/null
		wait "$SERVER_PID" 2>/dev/null
	fi
	ip netns del "$NS_SRV" 2>/dev/null   # removes its end of the veth pair, and so the pair
	ip netns del "$NS_CLI" 2>/dev/null
	ip link del "$VETH_SRV" 2>/dev/null  # in case the pair was never moved
	if [[ $OUT != "$WORK" ]]; then
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT INT TERM

for ns in "$NS_SRV" "$NS_CLI"; do
	if ip netns list | grep -qw "$ns"; then
		echo "twohost.sh: namespace $ns exists already; remove it or set PREFIX" >&2
		trap - EXIT
		exit 1
	fi
done

echo "== building recordbench"
go build -o "$WORK/recordbench" ./bench/cmd/recordbench

echo "== namespaces $NS_SRV ($SRV_IP) and $NS_CLI ($CLI_IP), link $RATE each way (tbf burst $BURST, limit $LIMIT)"
ip netns add "$NS_SRV"
ip netns add "$NS_CLI"
ip link add "$VETH_SRV" type veth peer name "$VETH_CLI"
ip link set "$VETH_SRV" netns "$NS_SRV"
ip link set "$VETH_CLI" netns "$NS_CLI"
ip -n "$NS_SRV" addr add "$SRV_IP/24" dev "$VETH_SRV"
ip -n "$NS_CLI" addr add "$CLI_IP/24" dev "$VETH_CLI"
for ns in "$NS_SRV" "$NS_CLI"; do
	ip -n "$ns" link set lo up
done
ip -n "$NS_SRV" link set "$VETH_SRV" up
ip -n "$NS_CLI" link set "$VETH_CLI" up
# The cap: a token bucket on the egress of each end of the pair.
tc -n "$NS_SRV" qdisc add dev "$VETH_SRV" root tbf rate "$RATE" burst "$BURST" limit "$LIMIT"
tc -n "$NS_CLI" qdisc add dev "$VETH_CLI" root tbf rate "$RATE" burst "$BURST" limit "$LIMIT"
tc -n "$NS_CLI" qdisc show dev "$VETH_CLI"

echo "== recordbench serve in $NS_SRV"
ip netns exec "$NS_SRV" "$WORK/recordbench" serve -listen "$SRV_IP:$PORT" >"$WORK/serve.out" 2>"$WORK/serve.err" &
SERVER_PID=$!
PIN=""
for _ in $(seq 100); do
	PIN=$(sed -n 's/^recordbench serve: fingerprint //p' "$WORK/serve.out")
	[[ -n $PIN ]] && break
	if ! kill -0 "$SERVER_PID" 2>/dev/null; then
		cat "$WORK/serve.err" >&2
		exit 1
	fi
	sleep 0.1
done
[[ -n $PIN ]] || { echo "twohost.sh: the server printed no fingerprint" >&2; exit 1; }
cat "$WORK/serve.out"

echo "== recordbench run in $NS_CLI"
ip netns exec "$NS_CLI" "$WORK/recordbench" run -connect "$SRV_IP:$PORT" -pin "$PIN" \
	-json "$OUT/twohost.jsonl" "${RUN_FLAGS[@]}"

echo "== server log"
cat "$WORK/serve.err"
echo "== results in $OUT/twohost.jsonl"
