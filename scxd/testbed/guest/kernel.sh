# Kernel-level scenarios for the fast (busybox) test bed; sourced by the initramfs /init.
# Each scenario emits one JSON line through `emit` with what the kernel reported.
# No scxd code runs here: this pins down the kernel + loader behaviour scxd relies on.

sx=/sys/kernel/sched_ext
kv() { cat "$sx/$1" 2>/dev/null || echo none; }
wait_state() {  # wait_state STATE TENTHS
    i=0
    while [ "$(kv state)" != "$1" ] && [ "$i" -lt "$2" ]; do sleep 0.1; i=$((i + 1)); done
    [ "$(kv state)" = "$1" ]
}
kmsg_has() { dmesg | grep -q "$1"; }

emit "{\"scenario\":\"initial\",\"state\":\"$(kv state)\",\"enable_seq\":$(kv enable_seq),\"switch_all\":$(kv switch_all),\"root\":\"$( [ -d $sx/root ] && echo yes || echo no)\"}"

# 1. enable / disable with SIGINT, enable_seq +1, ops name
scx_simple >/tmp/simple.log 2>&1 &
p=$!
wait_state enabled 100; en=$?
ops=$(kv root/ops); seq=$(kv enable_seq); ext=$(grep -c "ext.enabled *: *1" /proc/1/sched)
kill -INT $p; wait $p; rc=$?
wait_state disabled 50; dis=$?
last=$(tail -n1 /tmp/simple.log)
emit "{\"scenario\":\"simple_cycle\",\"enabled\":$((en == 0)),\"ops\":\"$ops\",\"enable_seq\":$seq,\"pid1_on_ext\":$ext,\"exit_code\":$rc,\"disabled\":$((dis == 0)),\"exit_line\":\"$last\"}"

# 2. a second scheduler while one is loaded: EBUSY
scx_simple >/tmp/a.log 2>&1 &
a=$!
wait_state enabled 100
scx_qmap >/tmp/b.log 2>&1
brc=$?
busy=$(grep -c "Failed to attach struct_ops\|Device or resource busy\|-16" /tmp/b.log)
still=$(kv root/ops)
kill -INT $a; wait $a; wait_state disabled 50
emit "{\"scenario\":\"ebusy\",\"second_exit_code\":$brc,\"busy_lines\":$busy,\"ops_kept\":\"$still\"}"

# 3. partial mode
scx_qmap -p >/tmp/p.log 2>&1 &
q=$!
wait_state enabled 100
sa=$(kv switch_all); pops=$(kv root/ops)
kill -INT $q; wait $q; wait_state disabled 50
kmsg_has 'BPF scheduler "qmap" enabled (partial)'; part=$?
emit "{\"scenario\":\"partial\",\"switch_all\":$sa,\"ops\":\"$pops\",\"kmsg_partial\":$((part == 0))}"

# 4. BPF error ejection: the loader exits 0, the kernel says why
scx_qmap -e 50 >/tmp/e.log 2>&1 &
q=$!
( i=0; while [ $i -lt 200 ]; do sleep 0.01; i=$((i + 1)); done ) &
w=$!
wait $q; erc=$?
kill $w 2>/dev/null
wait_state disabled 50
kmsg_has 'BPF scheduler "qmap" disabled (scx_bpf_error)'; ej=$?
exitl=$(grep "EXIT" /tmp/e.log | head -n1 | tr -d '"')
emit "{\"scenario\":\"bpf_error_ejection\",\"exit_code\":$erc,\"kmsg_reason\":$((ej == 0)),\"exit_line\":\"$exitl\",\"state\":\"$(kv state)\"}"

# 5. every statically linked scx scheduler present (scx_bpfland, scx_flash, scx_flashyspark,
#    the optional C ones): start → enabled with its ops name → SIGINT → the EXIT line, 0.
#    scx_pair needs ≈9 s to initialise under emulation: allow 30 s.
for s in scx_bpfland scx_flash scx_flashyspark scx_nest scx_prev scx_pair; do
    command -v "$s" >/dev/null 2>&1 || continue
    "$s" >/tmp/$s.log 2>&1 &
    p=$!
    wait_state enabled 300; en=$?
    ops=$(kv root/ops); ext=$(grep -c "ext.enabled *: *1" /proc/1/sched)
    kill -INT $p; wait $p; rc=$?
    wait_state disabled 50; dis=$?
    last=$(grep "EXIT" /tmp/$s.log | tail -n1 | tr -d '"\\')
    emit "{\"scenario\":\"static_$s\",\"enabled\":$((en == 0)),\"ops\":\"$ops\",\"pid1_on_ext\":$ext,\"exit_code\":$rc,\"disabled\":$((dis == 0)),\"exit_line\":\"$last\"}"
done
