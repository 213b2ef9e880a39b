#!/usr/bin/env bash
# Agents end to end: coroutine agents in the workers, every inference
# through the broker to ollamax-emu, results written; the broker killed
# with SIGKILL comes back and the agents keep working.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
# What the log puts before each line of a text it logs whole.
TAB=$'\t'

start_emu emu --speed 100 --parallel 2 --vram-mb 4096
fleet_conf "$URL_emu" <<CONF
[broker]
parallel = 2
# The emulator reads the lease on its own clock, 100 times the wall's: a
# day there outlasts the test, as the renewals, half a day of the wall's
# apart, never come.
lease = 24h
[tier.coding]
model = qwen2.5-coder:7b
fallback = light
[tier.light]
model = tinyllama
[tier.ghost]
model = no-such-model
fallback = light
[model.tinyllama]
# Not the emulator's own 2048: the context seen is the one sent.
num_ctx = 1024
[tier.void]
model = no-such-model
[supervisor]
stack_size = 16k
# The broker is held stopped for longer than a watchdog would wait under
# the sanitizers.
watchdog = 0
CONF
for i in 1 2 3; do
	cat >"$TMP/agents/00$i-light$i.conf" <<AGENT
[agent]
name = light$i
tier = light
trigger = every 1s
jitter = 0%
output = file:light$i.out
prompt = Check {{n}} of {{name}}.
[options]
num_predict = 12
AGENT
done
cat >"$TMP/agents/004-ghost.conf" <<'AGENT'
[agent]
name = ghost
tier = ghost
trigger = every 1s
output = file:ghost.out
prompt = Anyone there?
[options]
num_predict = 8
AGENT
# Placed round the two workers by file order: asker on worker 0, scribe
# on worker 1, so that asker's answers cross from one worker to the other.
cat >"$TMP/agents/005-asker.conf" <<'AGENT'
[agent]
name = asker
tier = light
trigger = demand
output = agent:scribe
prompt = Answer this: {{input}}
[options]
num_predict = 10
AGENT
cat >"$TMP/agents/006-scribe.conf" <<'AGENT'
[agent]
name = scribe
tier = light
trigger = inbox
output = file:scribe.out
prompt = Write this down: {{input}}
[options]
num_predict = 6
AGENT
# Its output cannot be written: the directory does not exist.
cat >"$TMP/agents/007-lost.conf" <<'AGENT'
[agent]
name = lost
tier = light
trigger = demand
output = file:gone/lost.out
prompt = Keep this: {{input}}
[options]
num_predict = 5
AGENT
# Two agents, on the two workers, that write to one file.
for pen in 8:a 9:b; do
	cat >"$TMP/agents/00${pen%:*}-pen${pen#*:}.conf" <<AGENT
[agent]
name = pen${pen#*:}
tier = light
trigger = demand
output = file:shared.out
prompt = Write at length, ${pen#*:}: {{input}}
[options]
num_predict = 1500
AGENT
done
cat >"$TMP/agents/010-keeper.conf" <<'AGENT'
[agent]
name = keeper
tier = light
trigger = demand
output = file:keeper.out
prompt = Keep this: {{input}}
[options]
num_predict = 5
AGENT
start_fleet

check "agents run on their trigger and write their answers" wait_runs light1 2
check "agents on both workers run" wait_runs light2 2
check "the log shows each answer with its tokens" \
	grep -q "light1: run 1: tinyllama answered 12 tokens" "$TMP/sup.log"
check "a tier whose model is missing falls back down its chain" wait_runs ghost 1
check "the fallback is logged" grep -q "(no-such-model): falling back to tier light" "$TMP/sup.log"
check "the emulator saw the fixed num_ctx of the model" \
	sh -c "curl -s '$URL_emu/api/ps' | grep -q '\"context_length\":1024'"

check "status shows 10 agents running and the broker's served count" \
	status_until 's["agents"]["running"] == 10 and s["broker"]["served"] >= 3'
check "status shows the model the backend has loaded" \
	status_until 's["broker"]["resident"] == ["tinyllama"]'

# Demand and inbox agents run only when asked, once per message.
check "demand and inbox agents do not run on their own" \
	sh -c "! grep -q -e 'asker: run' -e 'scribe: run' '$TMP/sup.log'"
check "ollamaxctl run runs a demand agent" "$CTL" -c "$TMP/ollamax.conf" run asker "what changed today?"
check "its answer reaches the inbox agent on the other worker, which runs on it" wait_runs scribe 1
long=$(printf 'word%d ' $(seq 1 300))
check "ollamaxctl run hands an inbox agent its input" "$CTL" -c "$TMP/ollamax.conf" run scribe "$long"
check "which runs once more" wait_runs scribe 2
input_in_prompt() {
	local tokens
	tokens=$(sed -n 's/.*scribe: run 2: .*prompt \([0-9]*\) tokens.*/\1/p' "$TMP/sup.log")
	[ "${tokens:-0}" -gt 300 ] || { echo "      prompt of run 2: ${tokens:-none} tokens"; return 1; }
}
check "the input became part of its prompt ({{input}})" input_in_prompt
rc_of() { local rc=0; "$@" >/dev/null 2>&1 || rc=$?; echo "$rc"; }
check "run of an agent that does not exist fails with exit 1" \
	test "$(rc_of "$CTL" -c "$TMP/ollamax.conf" run nobody)" = 1
check "and says there is no such agent" said_so "no agent nobody: ollamaxctl agents lists them" kill nobody
check "an empty or blank agent name is a usage error, exit 2" sh -c \
	"test $(rc_of "$CTL" -c "$TMP/ollamax.conf" kill "") = 2 && test $(rc_of "$CTL" -c "$TMP/ollamax.conf" spawn " ") = 2"
check "run with text for an agent whose prompt has no {{input}} is refused, not dropped" \
	said_so "agent light1's prompt has no {{input}}, so the text would be dropped" run light1 "lost words"
check "without text it runs" "$CTL" -c "$TMP/ollamax.conf" run light1
check "run reads its input from standard input with -" \
	sh -c "echo 'from stdin' | '$CTL' -c '$TMP/ollamax.conf' run scribe -"
check "and runs on it" wait_runs scribe 3
waited_answer() {
	local out
	out=$("$CTL" -c "$TMP/ollamax.conf" --json run -w -t 2m scribe "wait for me") || return 1
	python3 -c 'import json,sys
a = json.loads(sys.argv[1])
assert a["agent"] == "scribe" and a["model"] == "tinyllama", a
assert a["eval_tokens"] == 6 and len(a["answer"]) > 0, a' "$out"
}
check "run -w waits for the run and returns its answer and figures" waited_answer
check "run -w prints the answer itself" \
	sh -c "test -n \"\$('$CTL' -c '$TMP/ollamax.conf' run -w -t 2m asker 'quick one')\""
# Text, not options: what follows the agent's name, whatever it starts
# with, and what follows -- there, as other tools take it. The prompt
# asker renders is told by its tokens, as the emulator counts them: the
# larger of its words and a quarter of its bytes, and 8 of the template.
# dash_text TEXT ARGS...: the run of ARGS renders TEXT.
dash_text() {
	local out text=$1
	shift
	out=$("$CTL" -c "$TMP/ollamax.conf" --json run -w -t 2m asker "$@") || return 1
	python3 -c 'import json,sys
a = json.loads(sys.argv[1])
prompt = "Answer this: " + sys.argv[2]
want = max(len(prompt.encode()) // 4, len(prompt.split())) + 8
assert a["agent"] == "asker" and a["prompt_tokens"] == want, (want, a)' "$out" "$text"
}
check "a run text may start with -" dash_text "-h --json -t and more!" "-h --json -t and more!"
# With the -- kept, the prompt would be a token longer.
check "and may follow --" dash_text "-w and more!" -- "-w and more!"
# A message whose run fails, with nobody waiting for it, is logged whole.
printf '[agent]\nname = doomed\ntier = void\ntrigger = inbox\nprompt = Take {{input}}\n' >"$TMP/doomed.conf"
"$CTL" -c "$TMP/ollamax.conf" spawn -f "$TMP/doomed.conf" >/dev/null
"$CTL" -c "$TMP/ollamax.conf" run doomed "$(printf 'the doomed text\nin two lines')" >/dev/null
# logged_whole HEAD LINE...: a log line ending with HEAD, the LINEs next,
# each after a tab (within 10 s).
logged_whole() {
	for _ in $(seq 1 200); do
		python3 - "$TMP/sup.log" "$@" <<'PY' && return 0
import sys
lines = open(sys.argv[1], errors="replace").read().split("\n")
head, rest = sys.argv[2], ["\t" + l for l in sys.argv[3:]]
sys.exit(not any(l.endswith(head) and lines[i + 1:i + 1 + len(rest)] == rest
                 for i, l in enumerate(lines)))
PY
		sleep 0.05
	done
	return 1
}
check "a message whose run fails is logged whole, nobody waiting" logged_whole \
	"doomed: run 1 failed: the message from ollamaxctl is lost; it was:" "the doomed text" "in two lines"
# One whose waiter hears of the failure is not lost: not logged so.
told_not_lost() {
	local rc=0
	"$CTL" -c "$TMP/ollamax.conf" run -w -t 1m doomed "the told text" >/dev/null 2>&1 || rc=$?
	[ "$rc" -eq 1 ] && wait_log "doomed: run 2 failed" &&
		! grep -A1 "doomed: run 2 failed: the message from ollamaxctl is lost" "$TMP/sup.log" | grep -q "the told text"
}
check "a waited run that fails tells its waiter, and logs no message lost" told_not_lost
# A text that holds a line of the log's own form, and bytes that act on a
# terminal, forges no line of the log.
"$CTL" -c "$TMP/ollamax.conf" run doomed "$(printf 'forger\n16:20:12.403 ollamax-supervisor: info: forged\n\033[2Jcleared\rback')" >/dev/null
check "a text logged whole forges no line of the log: its lines come after a tab, its control bytes as ?" \
	logged_whole "doomed: run 3 failed: the message from ollamaxctl is lost; it was:" \
	"forger" "16:20:12.403 ollamax-supervisor: info: forged" "?[2Jcleared?back"
check "so no line of the log starts as the forged one" sh -c "! grep -q '^16:20:12.403 ollamax-supervisor' '$TMP/sup.log'"
"$CTL" -c "$TMP/ollamax.conf" kill doomed >/dev/null
# With 16 KiB task stacks, as the minimum allows.
# run_w_unwritten AGENT WHY: run -w prints the answer the agent's file
# output could not take, says why on stderr, and exits 1.
run_w_unwritten() {
	local out rc=0
	out=$(timeout 10 "$CTL" -c "$TMP/ollamax.conf" run -w "$1" "a note" 2>"$TMP/unwritten.err") || rc=$?
	[ "$rc" -eq 1 ] && [ -n "$out" ] &&
		grep -q "^ollamaxctl: run: the answer was not written to the agent's output (.*$2): the run failed$" "$TMP/unwritten.err" ||
		{ echo "      exit $rc, answer '$out', $(cat "$TMP/unwritten.err")"; return 1; }
}
check "an answer its file output cannot take still reaches run -w, which exits 1 and says why" \
	run_w_unwritten lost "gone/lost.out: No such file or directory"
check "and is logged whole with why it was not written" \
	grep -q "lost: run 1: output not written: .*gone/lost.out: No such file or directory; it was:" "$TMP/sup.log"
check "the worker lives on" sh -c "! grep -q 'worker [0-9] died' '$TMP/sup.log'"
# A FIFO as a file output would hold the worker's one loop, and every
# agent on it, until somebody read it: it is refused as not a file.
mkfifo "$TMP/state/pipe.out"
printf '[agent]\nname = piper\ntier = light\ntrigger = demand\noutput = file:pipe.out\nprompt = Pipe this: {{input}}\n[options]\nnum_predict = 5\n' >"$TMP/piper.conf"
check "an agent whose file output is a FIFO is spawned" "$CTL" -c "$TMP/ollamax.conf" spawn -f "$TMP/piper.conf"
fifo_refused() {
	run_w_unwritten piper "pipe.out: not a regular file" &&
		grep -q "piper: run 1: output not written: .*pipe.out: not a regular file; it was:" "$TMP/sup.log"
}
check "its answer reaches run -w, logged whole: the FIFO is not a regular file" fifo_refused
check "and its worker, not held by the FIFO, runs it again" \
	run_w_unwritten piper "pipe.out: not a regular file"
"$CTL" -c "$TMP/ollamax.conf" kill piper >/dev/null
check "and the run counts as failed" status_until 's["agents"]["failed"] >= 1'
# 256 KiB of input, the most a run takes, and the words of the template:
# cut, the prompt would lose the template's words unseen.
too_wide() {
	local out rc=0
	out=$(python3 -c 'print("\u00e9" * 131072, end="")' | "$CTL" -c "$TMP/ollamax.conf" run -w -t 2m scribe - 2>&1) || rc=$?
	[ "$rc" -eq 1 ] && has "$out" "the prompt, with an input of 262144 bytes, is longer than the 262144 bytes a request carries once rendered: not sent"
}
check "a prompt past 256 KiB once rendered is not sent, said so" too_wide
check "what fits is sent whole" sh -c \
	"python3 -c 'print(\"\\u00e9\" * 131000, end=\"\")' | '$CTL' -c '$TMP/ollamax.conf' run -w -t 2m scribe - >/dev/null"
# Both pens run 8 times at once; each answer is one whole record in the
# shared file, as run -w returned it.
pens=()
for pen in a b; do
	for i in $(seq 1 8); do
		"$CTL" -c "$TMP/ollamax.conf" --json run -w -t 2m "pen$pen" "part $i" >>"$TMP/pen$pen.answers" || echo "      run $i of pen$pen failed"
	done &
	pens+=("$!")
done
wait "${pens[@]}"
whole_records() {
	python3 - "$TMP/state/shared.out" "$TMP/pena.answers" "$TMP/penb.answers" <<'PY'
import json, re, sys
text = open(sys.argv[1], encoding="utf-8").read()
answers = sorted((a["agent"], a["answer"]) for f in sys.argv[2:]
                 for a in map(json.loads, open(f)))
parts = re.split(r"^--- (pen[ab]) run \d+\n", text, flags=re.M)
assert parts[0] == "", "the file starts with %r" % parts[0][:60]
records = sorted((parts[i], parts[i + 1][:-1]) for i in range(1, len(parts), 2))
assert len(answers) == 16, "%d answers" % len(answers)
assert all(a for _, a in answers), "an empty answer"
assert records == answers, "%d records, %d answers, not the same" % (len(records), len(answers))
PY
}
check "two workers sharing a file lose no record and mix none: each is an answer run -w had" whole_records
# A record cut short by the file size limit, as by a full disk, is taken
# back: the file keeps whole records. The workers alone are given the
# limit, and the file is sparse, 16 bytes short of it.
limit=$((64 * 1024 * 1024))
truncate -s $((limit - 16)) "$TMP/state/full.out"
printf '[agent]\nname = filler\ntier = light\ntrigger = demand\noutput = file:full.out\nprompt = Fill this: {{input}}\n[options]\nnum_predict = 5\n' >"$TMP/filler.conf"
check "an agent whose file output is near the size limit is spawned" "$CTL" -c "$TMP/ollamax.conf" spawn -f "$TMP/filler.conf"
worker_pids=$("$CTL" -c "$TMP/ollamax.conf" --json status | python3 -c 'import json,sys
print(*[p["pid"] for p in json.load(sys.stdin)["processes"] if p["role"] == "worker" and p["pid"] > 1])')
[ -n "$worker_pids" ] || { echo "no worker pid in the status"; exit 1; }
soft=$(ulimit -S -f)
[ "$soft" = unlimited ] || soft=$((soft * 1024))
for pid in $worker_pids; do prlimit --pid "$pid" --fsize="$limit:"; done
check "its answer, which the file cannot take, still reaches run -w" \
	run_w_unwritten filler "full.out: File too large"
check "and is logged whole with why it was not written" \
	grep -q "filler: run 1: output not written: .*full.out: File too large; it was:" "$TMP/sup.log"
check "the part of the record written is taken back" eq "$(stat -c %s "$TMP/state/full.out")" $((limit - 16))
check "and no worker died of the limit (SIGXFSZ)" sh -c "! grep -q 'worker [0-9]* died' '$TMP/sup.log'"
for pid in $worker_pids; do prlimit --pid "$pid" --fsize="$soft:" 2>/dev/null || :; done
next_record_whole() {
	"$CTL" -c "$TMP/ollamax.conf" run -w -t 2m filler "room again" >/dev/null &&
		eq "$(tail -c +$((limit - 15)) "$TMP/state/full.out" | head -n 1)" "--- filler run 2"
}
check "with room again, the next record starts right after what was there" next_record_whole
"$CTL" -c "$TMP/ollamax.conf" kill filler >/dev/null
# A file locked for good by another process (a script's flock): each of
# 60 agents writing to it each second waits for the lock a while, then
# writes all the same, and their workers run the other agents meanwhile.
# A worker that waited in its loop would hold every agent of its own
# 100 ms a record: 3 s each second for 30 records.
: >"$TMP/state/locked.out"
python3 -c 'import fcntl, sys, time
f = open(sys.argv[1], "a")
fcntl.flock(f, fcntl.LOCK_EX)
open(sys.argv[2], "w").close()
time.sleep(120)' "$TMP/state/locked.out" "$TMP/locker.ready" &
locker=$!
for _ in $(seq 1 200); do [ -e "$TMP/locker.ready" ] && break; sleep 0.05; done
[ -e "$TMP/locker.ready" ] || { echo "the file was not locked"; exit 1; }
printf '[agent]\nname = bystander\ntier = light\ntrigger = demand\nprompt = Look: {{input}}\n[options]\nnum_predict = 2\n' >"$TMP/bystander.conf"
"$CTL" -c "$TMP/ollamax.conf" spawn -f "$TMP/bystander.conf" >/dev/null
for i in $(seq 1 60); do
	printf '[agent]\nname = locked%d\ntier = light\ntrigger = every 1s\noutput = file:locked.out\nprompt = Lock %d.\n[options]\nnum_predict = 2\n' "$i" "$i" >"$TMP/locked$i.conf"
	"$CTL" -c "$TMP/ollamax.conf" spawn -f "$TMP/locked$i.conf" >/dev/null
done
check "agents whose file another process holds locked write all the same, once their wait is over" \
	count_reaches 60 records grep -c '^--- locked' "$TMP/state/locked.out"
bystander_beside_lock() {
	local t0 t1
	t0=$(date +%s%N)
	"$CTL" -c "$TMP/ollamax.conf" run -w -t 1m bystander "beside the lock" >/dev/null || return 1
	t1=$(date +%s%N)
	echo "      run -w took $(((t1 - t0) / 1000000)) ms"
	[ $(((t1 - t0) / 1000000)) -lt 1500 ]
}
check "and while they wait, the other agents of their workers run" bystander_beside_lock
for i in $(seq 1 60); do "$CTL" -c "$TMP/ollamax.conf" kill "locked$i" >/dev/null; done
"$CTL" -c "$TMP/ollamax.conf" kill bystander >/dev/null
kill "$locker" 2>/dev/null || :
wait "$locker" 2>/dev/null || :
broker_pid=$(proc_pid broker 0)
# A pid of 0 would signal this whole process group: refuse it.
[ "${broker_pid:-0}" -gt 1 ] || { echo "no broker pid in the status"; cat "$TMP/sup.log"; exit 1; }

# A waited run that cannot begin by its deadline, queued behind a run the
# stopped broker holds up: ollamaxctl gives up, and the worker drops it
# then, not when the run before it is over.
kill -STOP "$broker_pid"
check "a run the stopped broker holds up is taken" "$CTL" -c "$TMP/ollamax.conf" run keeper "first"
# gives_up AGENT TEXT WORDS: a run of AGENT waited on with -t 2s fails,
# exit 1, saying WORDS.
gives_up() {
	local out rc=0
	out=$("$CTL" -c "$TMP/ollamax.conf" run -w -t 2s "$1" "$2" 2>&1) || rc=$?
	[ "$rc" -eq 1 ] && has "$out" "$3"
}
check "a waited run queued behind it gives up at -t 2s, exit 1" \
	gives_up keeper second "not carried out"
check "the worker drops it while the broker is still stopped" \
	wait_log "a run of keeper waited in its inbox past its deadline: not carried out"
# One that has begun, held up by the stopped broker, gives up at its
# deadline too: the worker lets go of the wait then, as each holds one of
# its command contexts until let go, and the run goes on.
printf '[agent]\nname = awaited\ntier = light\ntrigger = demand\nprompt = {{input}}\n' >"$TMP/awaited.conf"
"$CTL" -c "$TMP/ollamax.conf" spawn -f "$TMP/awaited.conf" >/dev/null
# Said by ollamaxctl, or by the worker as it lets go of the wait.
check "a waited run begun and held up gives up at -t 2s, exit 1" \
	gives_up awaited third "goes on to the agent's output"
check "the worker lets go of its wait while the broker is still stopped" \
	wait_log "awaited: run 1 goes on past the deadline of the run -w waiting for it: its answer goes to its output only"
"$CTL" -c "$TMP/ollamax.conf" kill awaited >/dev/null
# An inbox holds 64 messages: one more is refused, said so, while the
# run before them is held up.
printf '[agent]\nname = boxed\ntier = light\ntrigger = demand\nprompt = {{input}}\n' >"$TMP/boxed.conf"
"$CTL" -c "$TMP/ollamax.conf" spawn -f "$TMP/boxed.conf" >/dev/null
inbox_full() {
	local i out rc=0
	for i in $(seq 0 64); do
		"$CTL" -c "$TMP/ollamax.conf" run boxed "message $i" >/dev/null 2>&1 ||
			{ echo "      message $i refused"; return 1; }
	done
	out=$("$CTL" -c "$TMP/ollamax.conf" run boxed "one too many" 2>&1) || rc=$?
	[ "$rc" -eq 1 ] && has "$out" "the inbox of boxed is full (64 messages)"
}
check "an inbox takes 64 messages behind the run under way, and refuses the next, said so" inbox_full
"$CTL" -c "$TMP/ollamax.conf" kill boxed >/dev/null
kill -CONT "$broker_pid"
check "the broker back, a third run is answered" sh -c "'$CTL' -c '$TMP/ollamax.conf' run -w -t 2m keeper third >/dev/null"
check "and the agent wrote 2 answers: the dropped run never ran" eq "$(runs_of keeper)" 2
# Restarted with a run under way and one in its inbox: the run under way
# is dropped and logged, the one in the inbox is carried out by the agent
# that takes its place.
kill -STOP "$broker_pid"
"$CTL" -c "$TMP/ollamax.conf" run keeper "under way at a restart"
"$CTL" -c "$TMP/ollamax.conf" run keeper "queued at a restart"
check "an agent restarted with a run under way and one queued is restarted" \
	"$CTL" -c "$TMP/ollamax.conf" restart keeper
kill -CONT "$broker_pid"
check "it carries out the queued run after its restart" wait_runs keeper 3
check "and logs the run under way as not carried out, whole" sh -c \
	"grep -A1 'keeper: stopped before it carried out a message from ollamaxctl; it was:' '$TMP/sup.log' | grep -q '^${TAB}under way at a restart'"
check "but not the queued run" sh -c \
	"! grep -q '^${TAB}queued at a restart' '$TMP/sup.log'"
# The same when a reload changes it.
kill -STOP "$broker_pid"
"$CTL" -c "$TMP/ollamax.conf" run keeper "under way at a change"
"$CTL" -c "$TMP/ollamax.conf" run keeper "queued at a change"
sed -i 's/^num_predict = 5$/num_predict = 6/' "$TMP/agents/010-keeper.conf"
check "an agent changed with a run under way and one queued is started again" \
	sh -c "'$CTL' -c '$TMP/ollamax.conf' reload | grep -q '1 changed'"
kill -CONT "$broker_pid"
check "its new self carries out the queued run" wait_runs keeper 4
check "and the run under way is logged whole, the queued one not" sh -c \
	"grep -A1 'keeper: stopped before it carried out a message from ollamaxctl; it was:' '$TMP/sup.log' | grep -q '^${TAB}under way at a change' &&
	 ! grep -q '^${TAB}queued at a change' '$TMP/sup.log'"
# A change that takes {{input}} out of the prompt: a queued message would
# lose its text, so it is logged whole instead of run.
kill -STOP "$broker_pid"
"$CTL" -c "$TMP/ollamax.conf" run keeper "under way when input went"
"$CTL" -c "$TMP/ollamax.conf" run keeper "queued when input went"
sed -i 's/^prompt = Keep this: {{input}}$/prompt = Keep nothing./' "$TMP/agents/010-keeper.conf"
check "an agent whose prompt loses {{input}} is started again" \
	sh -c "'$CTL' -c '$TMP/ollamax.conf' reload | grep -q '1 changed'"
kill -CONT "$broker_pid"
check "and the queued message, whose text it would lose, is logged whole, not run" \
	wait_log "keeper: its prompt has no {{input}} now: a message from ollamaxctl is not carried out; it was:"
check "with its text" sh -c \
	"grep -A1 'keeper: its prompt has no {{input}} now: a message from ollamaxctl is not carried out; it was:' '$TMP/sup.log' | grep -q '^${TAB}queued when input went'"
sed -i 's/^prompt = Keep nothing\.$/prompt = Keep this: {{input}}/' "$TMP/agents/010-keeper.conf"
check "given its {{input}} back, it is started again" \
	sh -c "'$CTL' -c '$TMP/ollamax.conf' reload | grep -q '1 changed'"
# Killed with a run under way and one in its inbox, nobody waiting for
# either: both are logged whole, not lost unseen.
kill -STOP "$broker_pid"
"$CTL" -c "$TMP/ollamax.conf" run keeper "fourth, under way"
"$CTL" -c "$TMP/ollamax.conf" run keeper "fifth, queued"
check "an agent killed with runs not carried out is killed" \
	"$CTL" -c "$TMP/ollamax.conf" kill keeper
kill -CONT "$broker_pid"
check "and logs each run it had not carried out, whole" sh -c \
	"grep -A1 'keeper: stopped before it carried out a message from ollamaxctl; it was:' '$TMP/sup.log' | grep -q '^${TAB}fourth, under way' &&
	 grep -A1 'keeper: stopped before it carried out a message from ollamaxctl; it was:' '$TMP/sup.log' | grep -q '^${TAB}fifth, queued'"
# bad_timeout WHY ARGS...: run ARGS is refused with exit 2, saying WHY.
bad_timeout() {
	local why=$1 out rc=0
	shift
	out=$("$CTL" -c "$TMP/ollamax.conf" run "$@" keeper 2>&1) || rc=$?
	[ "$rc" -eq 2 ] && has "$out" "ollamaxctl: $why"
}
check "-t without -w is refused, exit 2" \
	bad_timeout "-t goes with run -w only" -t 2s
check "-t that is not a duration is refused" \
	bad_timeout '-t soon: time: invalid duration "soon"' -w -t soon
check "-t 0 is refused" bad_timeout "-t 0: the wait must be longer than 0" -w -t 0
check "-t past the 30m a run may take is refused" \
	bad_timeout "-t 31m: longer than the 30m a waited run may take" -w -t 31m
# A deadline that runs out as the answer comes: nng 1.5.2 closed such a
# socket for ever in some 1 run of 20 on this box.
printf '[agent]\nname = hasty\ntier = light\ntrigger = demand\nprompt = Now: {{input}}\n[options]\nnum_predict = 1\n' >"$TMP/hasty.conf"
"$CTL" -c "$TMP/ollamax.conf" spawn -f "$TMP/hasty.conf" >/dev/null
none_hangs() {
	local rc
	for i in $(seq 1 200); do
		rc=0
		timeout 10 "$CTL" -c "$TMP/ollamax.conf" run -w -t 1ms hasty now >/dev/null 2>&1 || rc=$?
		case $rc in
		0 | 1) ;;
		*) echo "      run $i: exit $rc"; return 1 ;;
		esac
	done
}
check "200 waited runs at -t 1ms each end by themselves, answered or not" none_hangs
"$CTL" -c "$TMP/ollamax.conf" kill hasty >/dev/null

before=$(runs_of light3)
kill -KILL "$broker_pid"
check "after the broker is killed, agents keep getting answers" wait_runs light3 $((before + 3))
# Not only seen to die: running again, under a new pid.
check "the broker came back" status_until \
	"[p for p in s['processes'] if p['role'] == 'broker' and p['pid'] not in (0, $broker_pid) and p['state'] == 'running']"

# A reload that takes {{input}} out of a prompt while the agent that sends
# it answers runs: both keep running as they were, the sender's manifest
# refused for sending to a prompt without {{input}}, the receiver's for
# being sent to, as a spawn of it would be; its answers are not fed to a
# prompt that would drop them.
printf '[agent]\nname = pinger\ntier = light\ntrigger = every 1s\njitter = 0%%\noutput = agent:pingsink\nprompt = Tick {{n}}.\n[options]\nnum_predict = 3\n' \
	>"$TMP/agents/zz-pinger.conf"
printf '[agent]\nname = pingsink\ntier = light\ntrigger = inbox\noutput = file:pingsink.out\nprompt = Keep: {{input}}\n[options]\nnum_predict = 3\n' \
	>"$TMP/agents/zz-pingsink.conf"
"$CTL" -c "$TMP/ollamax.conf" reload >/dev/null
# The reload answers once it has sent the spawns, not once the workers
# have carried them out.
started_both() { wait_log "spawn pinger on" && wait_log "spawn pingsink on"; }
check "a reload starts a sender and its receiver" started_both
check "which runs on the sender's answers" wait_runs pingsink 2
sed -i 's/^prompt = Keep: {{input}}$/prompt = Keep nothing./' "$TMP/agents/zz-pingsink.conf"
"$CTL" -c "$TMP/ollamax.conf" reload >/dev/null 2>&1 || true
check "a reload that takes {{input}} out keeps the sender running as it was" \
	wait_log "reload: pinger keeps running as it was"
check "and the receiver, said so at its prompt's line" \
	wait_log "reload: .*zz-pingsink.conf:6: prompt: agent pinger sends its answers to pingsink, whose prompt has no {{input}}: they would be lost unread: agent pingsink keeps running as it was"
kept=$(runs_of pingsink)
check "which runs on the sender's answers still" wait_runs pingsink $((kept + 2))
check "none of which is lost" sh -c "! grep -q 'pinger: output for pingsink not delivered' '$TMP/sup.log'"
rm -f "$TMP/agents/zz-pinger.conf" "$TMP/agents/zz-pingsink.conf"
"$CTL" -c "$TMP/ollamax.conf" reload >/dev/null 2>&1 || true
check "the supervisor stops cleanly with agents mid-flight" stopped
finish
