#!/usr/bin/env bash
# ollamax-emu over real HTTP: Ollama's answers to good and bad requests,
# body and connection limits, and the injected faults.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

start_emu main --speed 100 --parallel 2 --max-body 65536 --idle-timeout 1
start_emu fail --speed inf --fail-rate 1
start_emu drop --speed inf --drop-rate 1
start_emu garbage --speed inf --garbage-rate 1
start_emu stall --speed inf --stall-rate 1 --stall-ms 300
start_emu big --speed inf
start_emu slow --speed 1
start_emu prefill --speed 4
start_emu order --speed inf --vram-mb 8192
# Two small slow models, one slot, one runner: what a client that leaves
# gives back shows in how soon the next is served and in the loads.
for m in a b; do
	printf '[%s:1]\nsize_mb = 100\ncontext_length = 4096\nload_mb_per_s = 100\nprompt_tokens_per_s = 1000\ngen_tokens_per_s = 10\nkv_kb_per_token = 1\n' "$m"
done >"$TMP/small.ini"
start_emu gone --speed 1 --parallel 1 --max-loaded 1 --catalog "$TMP/small.ini"
# A model whose load takes 4 s: long enough to look at it meanwhile.
printf '[cold:1]\nsize_mb = 100\ncontext_length = 4096\nload_mb_per_s = 25\nprompt_tokens_per_s = 1000\ngen_tokens_per_s = 100\nkv_kb_per_token = 1\n' >"$TMP/cold.ini"
start_emu cold --speed 1 --catalog "$TMP/cold.ini"
start_emu noqueue --speed 1 --max-queue 0 --catalog "$TMP/cold.ini"
start_emu term --speed 1 --catalog "$TMP/small.ini"
start_emu stop --speed 1 --parallel 1 --catalog "$TMP/small.ini"


check "GET / says Ollama is running" \
	eq "$(http GET "$URL_main/")" "200 Ollama is running"
check "the version is reported" \
	eq "$(http GET "$URL_main/api/version")" '200 {"version":"0.33.0"}'
# Health checks may use HEAD, which Ollama answers for these too.
check "HEAD of /api/version and /api/tags is a 200 without a body" \
	eq "$(curl -s -m 20 -I -o /dev/null -w '%{http_code}' "$URL_main/api/version") $(curl -s -m 20 -I -o /dev/null -w '%{http_code}' "$URL_main/api/tags")" "200 200"
check "an unknown path is gin's 404" \
	eq "$(http GET "$URL_main/api/nope")" "404 404 page not found"
check "a missing body is a 400" \
	eq "$(http POST "$URL_main/api/generate")" '400 {"error":"missing request body"}'
check "malformed JSON is a 400" \
	eq "$(http POST "$URL_main/api/generate" '{"model":')" '400 {"error":"unexpected EOF"}'
check "a wrongly typed option is a 400 naming the option" \
	eq "$(http POST "$URL_main/api/generate" '{"model":"tinyllama","prompt":"x","options":{"top_k":"many"}}')" \
	'400 {"error":"option \"top_k\" must be of type integer"}'
check "a wrongly typed field is a 400 in Go's words" \
	eq "$(http POST "$URL_main/api/chat" '{"model":"tinyllama","messages":"hi"}')" \
	'400 {"error":"json: cannot unmarshal string into Go struct field ChatRequest.messages of type []api.Message"}'
check "so are a message's tool_calls" \
	eq "$(http POST "$URL_main/api/chat" '{"model":"tinyllama","messages":[{"role":"assistant","tool_calls":{}}]}')" \
	'400 {"error":"json: cannot unmarshal object into Go struct field ChatRequest.messages.tool_calls of type []api.ToolCall"}'
check "embed's truncate and dimensions" \
	eq "$(http POST "$URL_main/api/embed" '{"model":"nomic-embed-text","input":"x","truncate":"yes"}')
$(http POST "$URL_main/api/embed" '{"model":"nomic-embed-text","input":"x","dimensions":"8"}')" \
	'400 {"error":"json: cannot unmarshal string into Go struct field EmbedRequest.truncate of type bool"}
400 {"error":"json: cannot unmarshal string into Go struct field EmbedRequest.dimensions of type int"}'
check "and show's verbose" \
	eq "$(http POST "$URL_main/api/show" '{"model":"tinyllama","verbose":"yes"}')" \
	'400 {"error":"json: cannot unmarshal string into Go struct field ShowRequest.verbose of type bool"}'
check "chat without a model is a 400" \
	eq "$(http POST "$URL_main/api/chat" '{"messages":[]}')" '400 {"error":"model is required"}'
check "generate of an unknown model is a 404" \
	eq "$(http POST "$URL_main/api/generate" '{"model":"foo","prompt":"x"}')" \
	"404 {\"error\":\"model 'foo' not found\"}"
check "embed of an unknown model is a 404 that says to pull it" \
	eq "$(http POST "$URL_main/api/embed" '{"model":"foo","input":"x"}')" \
	'404 {"error":"model \"foo\" not found, try pulling it first"}'
check "a model is found by any name Ollama reads as its own" \
	eq "$(http POST "$URL_main/api/show" '{"model":"registry.ollama.ai/library/TinyLlama:latest"}' | cut -c1-4)" "200 "
check "but not by another namespace's" \
	eq "$(http POST "$URL_main/api/show" '{"model":"someone/tinyllama"}' | cut -c1-4)" "404 "
check "a bare-number keep_alive string is a 400" \
	eq "$(http POST "$URL_main/api/generate" '{"model":"tinyllama","keep_alive":"300"}')" \
	'400 {"error":"time: missing unit in duration \"300\""}'


# Names as Ollama 0.33 reads them (internal/modelref, types/model/name.go):
# blanks trimmed, ":local" taken off, then checked; what it answers to a
# name that is blank, invalid or unknown differs by endpoint.
statuses() { # NAME: the status of generate, chat, embed, embeddings, show
	local ep out=""
	for ep in generate chat embed embeddings show; do
		out="$out $(http POST "$URL_main/api/$ep" "{\"model\":\"$1\"}" | cut -d' ' -f1)"
	done
	echo "${out# }"
}
# The message a reply's body holds, decoded.
said() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["error"], end="")' "$TMP/body"; }
check "blanks around a name are trimmed on every endpoint" \
	eq "$(statuses ' library/tinyllama:latest\t\u00a0')" "200 200 200 200 200"
check "and so is a :local after it" \
	eq "$(statuses 'tinyllama:LOCAL')" "200 200 200 200 200"
check "a name of blanks is not found on generate and embed, required elsewhere" \
	eq "$(statuses ' \t') $(http DELETE "$URL_main/api/delete" '{"model":" "}')" \
	'404 400 404 400 400 400 {"error":"model is required"}'
check "generate and embed name it as given, embed not as it names a model it lacks" \
	eq "$(http POST "$URL_main/api/generate" '{"model":" "}')
$(http POST "$URL_main/api/embed" '{"model":""}')" \
	"404 {\"error\":\"model ' ' not found\"}
404 {\"error\":\"model '' not found\"}"
check "an invalid name is a 400 on every endpoint" \
	eq "$(statuses 'tiny llama') $(http DELETE "$URL_main/api/delete" '{"model":"tiny llama"}' | cut -d' ' -f1)" \
	"400 400 400 400 400 400"
check "which all but delete say is an invalid model name" \
	eq "$(http POST "$URL_main/api/chat" '{"model":"tinyllama@sha256:0123"}')
$(http POST "$URL_main/api/embeddings" '{"model":"tinyllama:"}')" \
	'400 {"error":"invalid model name"}
400 {"error":"invalid model name"}'
check "delete quotes the name as Go does" \
	eq "$(http DELETE "$URL_main/api/delete" '{"model":" a b\u0001\u00a0\u00e9"}' | cut -d' ' -f1) $(said)" \
	'400 name " a b\x01\u00a0é" is invalid'
check ":local and :cloud together are a 400" \
	eq "$(http POST "$URL_main/api/show" '{"model":" m:local:cloud "}')" \
	'400 {"error":"use either :local or :cloud, not both: \"m:local:cloud\""}'
check "a cloud model is Ollama's answer with the cloud disabled" \
	eq "$(http POST "$URL_main/api/generate" '{"model":"gpt-oss:20b-cloud"}')
$(http POST "$URL_main/api/show" '{"model":"gpt-oss:cloud"}')" \
	'403 {"error":"ollama cloud is disabled: remote model is unavailable"}
403 {"error":"ollama cloud is disabled: remote model details are unavailable"}'
check "show names a model it lacks in its short form" \
	eq "$(http POST "$URL_main/api/show" '{"model":" registry.ollama.ai/library/foo"}')
$(http POST "$URL_main/api/show" '{"model":"me/foo:1"}')" \
	"404 {\"error\":\"model 'foo:latest' not found\"}
404 {\"error\":\"model 'me/foo:1' not found\"}"
check "the others name it as given, blanks too, embed and embeddings quoted" \
	eq "$(http POST "$URL_main/api/chat" '{"model":" foo\t"}' | cut -d' ' -f1) $(said)
$(http POST "$URL_main/api/embeddings" '{"model":" foo\t"}' | cut -d' ' -f1) $(said)" \
	"404 model ' foo	' not found
404 model \" foo\\t\" not found, try pulling it first"
check "the legacy embeddings finds a model only in its own case" \
	eq "$(http POST "$URL_main/api/embeddings" '{"model":"Nomic-Embed-Text"}' | cut -c1-4)$(http POST "$URL_main/api/embed" '{"model":"Nomic-Embed-Text"}' | cut -c1-4)" \
	"404 200 "
long_name=$(python3 -c 'print("\u00e9" * 5000)')
check "a long name that is not ASCII is an invalid name" \
	eq "$(http POST "$URL_main/api/generate" "{\"model\":\"$long_name\",\"prompt\":\"x\"}")" \
	'400 {"error":"invalid model name"}'
check "and delete quotes all of it, controls and a lone surrogate too" \
	eq "$(http DELETE "$URL_main/api/delete" "{\"model\":\"\\u0000\\u001f$long_name\\ud800\"}" | cut -d' ' -f1) $(said)" \
	"400 name \"\\x00\\x1f$long_name�\" is invalid"
xs=$(printf 'x%.0s' $(seq 10240))
check "a valid name of 10 KB, past its scheme, is not found whole" \
	eq "$(http POST "$URL_main/api/generate" "{\"model\":\"$xs://example.com/me/m\"}")" \
	"404 {\"error\":\"model '$xs://example.com/me/m' not found\"}"
printf '{"model":"\xff\xfe:1"}' >"$TMP/latin1.json"
check "a name that is not UTF-8 is an invalid one" \
	eq "$(curl -s -m 20 -w ' %{http_code}' -X DELETE --data-binary @"$TMP/latin1.json" "$URL_main/api/delete")" \
	'{"error":"name \"��:1\" is invalid"} 400'

check "raw with a context is a 400, as Ollama's" \
	eq "$(http POST "$URL_main/api/generate" '{"model":"tinyllama","prompt":"x","raw":true,"context":[1]}')" \
	'400 {"error":"raw mode does not support template, system, or context"}'
inputs=$(python3 -c 'import json; print(json.dumps(["a"] * 2049))')
check "embed of more texts than it takes at once is a 400" \
	eq "$(http POST "$URL_main/api/embed" "{\"model\":\"nomic-embed-text\",\"input\":$inputs}")" \
	'400 {"error":"input: more texts than the 2048 this emulator embeds at once"}'
# 1024 texts of a model 4096 wide: a reply of 4 Mi numbers, near 90 MB.
inputs=$(python3 -c 'import json; print(json.dumps([""] * 1024))')
check "embed whose reply would pass 2 Mi numbers is a 400, said why" \
	eq "$(http POST "$URL_main/api/embed" "{\"model\":\"deepseek-r1:8b\",\"input\":$inputs}")" \
	'400 {"error":"input: 1024 texts of 4096 numbers each make a reply past the 2097152 numbers this emulator builds at once"}'
images=$(python3 -c 'import json; print(json.dumps([""] * 30000))')
saturated() {
	http POST "$URL_big/api/generate" "{\"model\":\"tinyllama\",\"prompt\":\"x\",\"stream\":false,\"images\":$images}" >/dev/null
	python3 -c 'import json,sys
d = json.load(open(sys.argv[1]))
sys.exit(0 if d["prompt_eval_count"] == 16777216 and len(d["context"]) <= 4096 and d["total_duration"] > 0 else 1)' "$TMP/body"
}
check "prompt tokens past 16 Mi saturate, and the context stays within num_ctx" saturated
# A num_ctx past the model's own is capped to it: the context returned too.
long_prompt=$(python3 -c 'print("word " * 6000)')
capped_context() {
	http POST "$URL_big/api/generate" "{\"model\":\"tinyllama\",\"prompt\":\"$long_prompt\",\"stream\":false,\"options\":{\"num_ctx\":1000000,\"num_predict\":1}}" >/dev/null
	python3 -c 'import json,sys
d = json.load(open(sys.argv[1]))
print("      context of", len(d["context"]), "for", d["prompt_eval_count"], "prompt tokens")
sys.exit(0 if d["prompt_eval_count"] > 2048 and len(d["context"]) == 2048 else 1)' "$TMP/body"
}
check "a num_ctx past the model's returns no more context than the model holds" capped_context
# A num_ctx of 0 or below stands, as Ollama's FromMap has it, and is made 4.
small_context() {
	http POST "$URL_big/api/generate" '{"model":"qwen2.5:3b","options":{"num_ctx":0}}' >/dev/null
	curl -s "$URL_big/api/ps" | python3 -c 'import json,sys
ctx = [m["context_length"] for m in json.load(sys.stdin)["models"] if m["name"] == "qwen2.5:3b"]
assert ctx == [4], ctx'
}
check "a num_ctx of 0 is a context of 4, not the default" small_context
# Capabilities past completion, as Ollama's scheduler checks them.
check "a chat with tools to a model without them is a 400" \
	eq "$(http POST "$URL_big/api/chat" '{"model":"tinyllama","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}],"stream":false}')" \
	'400 {"error":"registry.ollama.ai/library/tinyllama:latest does not support tools"}'
check "but taken by one with them" \
	has "$(http POST "$URL_big/api/chat" '{"model":"qwen2.5:3b","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}],"stream":false,"options":{"num_predict":1}}')" '200 {'
check "a generate with a suffix to a model without insert is a 400" \
	eq "$(http POST "$URL_big/api/generate" '{"model":"tinyllama","prompt":"def f(","suffix":"return 1","stream":false}')" \
	'400 {"error":"registry.ollama.ai/library/tinyllama:latest does not support insert"}'
check "but taken by one with it" \
	has "$(http POST "$URL_big/api/generate" '{"model":"qwen2.5-coder:3b","prompt":"def f(","suffix":"return 1","stream":false,"options":{"num_predict":1}}')" '200 {'
check "draft_num_predict is an option of integers" \
	eq "$(http POST "$URL_big/api/generate" '{"model":"tinyllama","prompt":"x","options":{"draft_num_predict":"x"}}')" \
	'400 {"error":"option \"draft_num_predict\" must be of type integer"}'
speed_refused() {
	local out rc=0
	out=$(timeout 10 "$BUILD/ollamax-emu" --speed 20000 2>&1) || rc=$?
	[ "$rc" -eq 2 ] && has "$out" "--speed 20000: expected a number in [0.001, 10000]"
}
check "a --speed past what the clock holds for ten days is refused, exit 2" speed_refused
stray_refused() {
	local out rc=0
	out=$(timeout 10 "$BUILD/ollamax-emu" --listen 127.0.0.1:0 8080 2>&1) || rc=$?
	[ "$rc" -eq 2 ] && has "$out" "8080: not an option (it takes options only)"
}
check "an argument that is no option is refused, named, exit 2" stray_refused
# The load generator of the benchmarks takes its numbers whole too.
loadgen_refuses() { # WANT ARGS...
	local want=$1 out rc=0
	shift
	out=$(timeout 10 "$BUILD/ollamax-loadgen" --url "$URL_main/api/generate" "$@" 2>&1) || rc=$?
	[ "$rc" -eq 2 ] && has "$out" "$want"
}
check "ollamax-loadgen refuses a count with trailing junk" \
	loadgen_refuses "--requests 3x: expected a whole number in [1, 1000000000]" --requests 3x
check "and an infinite or NaN duration" \
	loadgen_refuses "--duration nan: expected a number in [0.001, 86400]" --duration nan
check "and a count and a duration together, which would leave one unheeded" \
	loadgen_refuses "--requests or --duration, not both" --requests 5 --duration 1
# Requests refused: said why, exit 1, and no latency of theirs.
loadgen_refused() {
	local out rc=0
	out=$(timeout 10 "$BUILD/ollamax-loadgen" --url http://127.0.0.1:9/api/generate --requests 3 2>"$TMP/loadgen.err") || rc=$?
	[ "$rc" -eq 1 ] && has "$(cat "$TMP/loadgen.err")" "http://127.0.0.1:9/api/generate: Couldn't connect to server" &&
		python3 -c 'import json,sys
r = json.loads(sys.argv[1])
assert r["failed"] == 3 and r["p50_ms"] is None and r["max_ms"] is None, r' "$out"
}
check "ollamax-loadgen tells a failed request's cause and counts no latency of it" loadgen_refused
# Ollama reads an empty variable as unset: the bad flag is the news.
empty_env_unset() {
	local out rc=0
	out=$(env OLLAMA_NUM_PARALLEL= OLLAMA_MAX_LOADED_MODELS= OLLAMA_MAX_QUEUE= \
		OLLAMA_KEEP_ALIVE= OLLAMA_CONTEXT_LENGTH= timeout 10 "$BUILD/ollamax-emu" --speed 20000 2>&1) || rc=$?
	[ "$rc" -eq 2 ] && has "$out" "--speed 20000" && ! has "$out" OLLAMA_ >/dev/null
}
check "an empty OLLAMA_* variable is as if unset" empty_env_unset
check "--version reads no OLLAMA_* variable" \
	has "$(OLLAMA_NUM_PARALLEL=many timeout 10 "$BUILD/ollamax-emu" --version 2>&1)" "ollamax-emu "
# Every example that starts the emulator, in the man pages and the README,
# listens elsewhere than on Ollama's port (where an Ollama runs, the
# default fails), and removes the port file it reads first (else it may
# read an earlier run's port).
examples_listen_apart() {
	python3 - "$ROOT"/man/*.[1-8] "$ROOT/README.md" <<'PY'
import re, sys
bad = 0
for path in sys.argv[1:]:
    before = ""
    for line in open(path).read().replace("\\e\n", " ").splitlines():
        m = re.match(r"(?:\$ |    build/)ollamax-emu (.*)", line)
        if m:
            listen = re.search(r"--listen (\S+)", m[1])
            port_file = re.search(r"--port-file (\S+)", m[1])
            if listen is None or re.search(r":11434$", listen[1]) or (
                    port_file and not re.match(r"(\$ |    )rm -f " + re.escape(port_file[1]) + r"\b", before)):
                print(f"      {path}: {line}")
                bad = 1
        before = line
sys.exit(bad)
PY
}
check "the examples of the emulator listen apart from Ollama, on a fresh port file" examples_listen_apart
# Ollama serves one at a time at least: its old "auto", 0, is 1.
OLLAMA_NUM_PARALLEL=0 start_emu auto --speed inf
check "OLLAMA_NUM_PARALLEL=0 serves one at a time" wait_log "models, parallel 1, vram" "$TMP/auto.log"
# nomic-embed-text is 768 wide; Ollama's vectors are of length 1.
embeds() {
	http POST "$URL_big/api/embed" '{"model":"nomic-embed-text","input":"x"}' >/dev/null
	python3 -c 'import json,sys
e = json.load(open(sys.argv[1])).get("embeddings")
ok = isinstance(e, list) and [len(v) for v in e] == [768] and abs(sum(x * x for x in e[0]) - 1) < 1e-6
print("      embeddings %s" % (e if not e else [len(v) for v in e])) if not ok else None
sys.exit(0 if ok else 1)' "$TMP/body"
}
check "an embedding model loads through /api/embed, and gives one vector of its width" embeds
# At --speed inf no time passes: the nominal durations are told, the
# load's within the total, as for generation.
embed_durations() {
	http POST "$URL_big/api/generate" '{"model":"nomic-embed-text","keep_alive":0}' >/dev/null
	http POST "$URL_big/api/embed" '{"model":"nomic-embed-text","input":"hello world"}' >/dev/null
	python3 -c 'import json,sys
d = json.load(open(sys.argv[1]))
ok = d["load_duration"] > 0 and d["total_duration"] > d["load_duration"]
print("      total %d, load %d" % (d["total_duration"], d["load_duration"])) if not ok else None
sys.exit(0 if ok else 1)' "$TMP/body"
}
check "an embed at --speed inf tells a total past its load" embed_durations
# Ollama reloads a model for any change of its runner's options.
with_batch() {
	http POST "$URL_big/api/generate" "{\"model\":\"tinyllama\",\"prompt\":\"x\",\"stream\":false,\"options\":{\"num_predict\":1,\"num_batch\":$1}}" >/dev/null
}
batch_reloads() {
	local before
	with_batch 128
	before=$(emu_sched big reloads)
	with_batch 128
	[ "$(emu_sched big reloads)" -eq "$before" ] || { echo "      the same num_batch reloaded"; return 1; }
	with_batch 64
	[ "$(emu_sched big reloads)" -eq $((before + 1)) ] || { echo "      another num_batch did not reload"; return 1; }
}
check "a change of num_batch reloads the model, the same does not" batch_reloads
check "and unloads with an empty generate and keep_alive 0, as Ollama's" \
	has "$(http POST "$URL_big/api/generate" '{"model":"nomic-embed-text","keep_alive":0}')" '"done_reason":"unload"'
check "though it cannot generate" \
	eq "$(http POST "$URL_big/api/generate" '{"model":"nomic-embed-text","prompt":"x"}')" \
	'400 {"error":"\"nomic-embed-text\" does not support generate"}'
# For ever is the longest duration on: some 292 years, as Ollama's
# time.Now().Add(math.MaxInt64), not a date of its own.
forever_expiry() {
	http POST "$URL_big/api/generate" '{"model":"tinyllama","keep_alive":"2100000h"}' >/dev/null
	curl -s "$URL_big/api/ps" | python3 -c 'import datetime, json, sys
m = [m for m in json.load(sys.stdin)["models"] if m["name"] == "tinyllama:latest"]
year = int(m[0]["expires_at"][:4]) if m else 0
now = datetime.datetime.now(datetime.timezone.utc).year
assert now + 291 <= year <= now + 293, (now, m)'
}
check "a keep_alive past a century is forever, its expiry Go's longest duration on" forever_expiry
check "a keep_alive up to Go's longest duration is taken" \
	has "$(http POST "$URL_big/api/generate" '{"model":"tinyllama","keep_alive":"2562047h47m16.854775807s"}')" \
	'"done_reason":"load"'
keep_alive_refused() {
	local out rc=0
	out=$(timeout 10 "$BUILD/ollamax-emu" --listen 127.0.0.1:0 --keep-alive 1e30 2>&1) || rc=$?
	[ "$rc" -eq 2 ] && has "$out" "--keep-alive 1e30: not a number of seconds that fits"
}
check "--keep-alive that does not fit is a usage error" keep_alive_refused
# A stream's status line goes out with its first line, after the prompt
# is read (2400 tokens at 600 a second: 1 s here, the model loaded), as
# Ollama's does.
first_line_gap() {
	python3 - "${URL_prefill#http://}" <<'PY'
import http.client, json, sys, time
c = http.client.HTTPConnection(sys.argv[1], timeout=30)
c.request("POST", "/api/generate", json.dumps({"model": "llama3.2:3b"}))
c.getresponse().read()
sent = time.monotonic()
c.request("POST", "/api/generate", json.dumps(
    {"model": "llama3.2:3b", "prompt": "word " * 2400, "options": {"num_predict": 3}}))
r = c.getresponse()
# A slow machine only makes the status later: a bound from below.
waited = time.monotonic() - sent
first = json.loads(r.readline())
print("      status %d after %.3f s" % (r.status, waited))
sys.exit(0 if r.status == 200 and "response" in first and waited >= 0.8 else 1)
PY
}
check "a stream's status line comes with its first line, not before the prompt is read" first_line_gap
# A request waiting for a load when the emulator stops is told why.
curl -s -m 30 -o "$TMP/shut.body" -w '%{http_code}' "$URL_slow/api/generate" \
	-d '{"model":"qwen2.5-coder:7b","prompt":"hi","stream":false}' >"$TMP/shut.code" &
shut_client=$!
loading() {
	for _ in $(seq 1 100); do
		has "$(http GET "$URL_slow/emu/stats")" '"peak_waiting":1' >/dev/null && return 0
		sleep 0.02
	done
	return 1
}
check "the slow emulator is loading for the request" loading
kill -TERM "$PID_slow"
wait "$shut_client" || true
check "it is answered 503 with Ollama's error body" \
	eq "$(cat "$TMP/shut.code") $(cat "$TMP/shut.body")" '503 {"error":"server shutting down"}'

big=$(head -c 100000 /dev/zero | tr '\0' 'a')
check "a body over --max-body is refused with 413" \
	eq "$(http POST "$URL_main/api/generate" "{\"model\":\"tinyllama\",\"prompt\":\"$big\"}")" \
	'413 {"error":"request body too large"}'

half_sent_is_closed() {
	local port=${URL_main##*:} start ms rc=0
	exec 7<>"/dev/tcp/127.0.0.1/$port"
	printf 'POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"mod' >&7
	# The idle time runs from the server's read of the last byte, which
	# follows the write: timed from here, a close before --idle-timeout's
	# 1 s (less 0.2 s for the timer's granularity) is not the timeout's.
	# 5 s bounds the wait.
	start=$(date +%s%N)
	timeout 5 cat <&7 >/dev/null || rc=$?
	ms=$((($(date +%s%N) - start) / 1000000))
	exec 7<&-
	[ "$rc" -eq 0 ] && [ "$ms" -ge 800 ] && [ "$ms" -lt 4000 ] ||
		{ echo "      cat exit $rc after $ms ms"; return 1; }
}
check "a half-sent request is closed after the idle timeout" half_sent_is_closed

check "an empty prompt loads the model" \
	has "$(http POST "$URL_main/api/generate" '{"model":"tinyllama"}')" '"done_reason":"load"'
# tinyllama's own context is 2048, under the default num_ctx; main's VRAM
# holds it whole.
ps_lists_loaded() {
	curl -s -m 20 "$URL_main/api/ps" | python3 -c 'import json,sys
ms = json.load(sys.stdin)["models"]
ok = [m["name"] for m in ms] == ["tinyllama:latest"] and \
    ms[0].get("context_length") == 2048 and ms[0].get("size_vram") == ms[0]["size"] > 0
print("      got %s" % ms) if not ok else None
sys.exit(0 if ok else 1)'
}
check "ps lists the loaded model with its context and VRAM" ps_lists_loaded
check "an empty prompt with keep_alive 0 unloads it" \
	has "$(http POST "$URL_main/api/generate" '{"model":"tinyllama","keep_alive":0}')" '"done_reason":"unload"'
ps_empty() {
	for _ in $(seq 1 100); do
		[ "$(http GET "$URL_main/api/ps")" = '200 {"models":[]}' ] && return 0
		sleep 0.02
	done
	return 1
}
check "ps is empty once the unload is done" ps_empty

# As Ollama's: the model that stays longest first, whatever the load order.
ps_names() {
	curl -s "$URL_order/api/ps" | python3 -c 'import json,sys
print(" ".join(m["name"] for m in json.load(sys.stdin)["models"]))'
}
load_for() { http POST "$URL_order/api/generate" "{\"model\":\"$1\",\"keep_alive\":$2}" >/dev/null; }
load_for qwen2.5-coder:7b '"5m"'
load_for tinyllama '"30m"'
check "ps lists the model that expires last first, though loaded last" \
	eq "$(ps_names)" "tinyllama:latest qwen2.5-coder:7b"
load_for qwen2.5-coder:7b -1
check "a keep_alive renewed to forever puts its model first" \
	eq "$(ps_names)" "qwen2.5-coder:7b tinyllama:latest"

stream=$(curl -s -m 20 -D "$TMP/headers" "$URL_main/api/generate" \
	-d '{"model":"tinyllama","prompt":"stream please","options":{"num_predict":6}}')
check "a stream is NDJSON" grep -qi '^content-type: application/x-ndjson' "$TMP/headers"
check "a stream has one line per token and a last done line" \
	eq "$(grep -c '"done":false' <<<"$stream")/$(tail -1 <<<"$stream" | grep -o '"eval_count":[0-9]*')" \
	'6/"eval_count":6'
check "num_predict stops the answer with done_reason length" \
	has "$(tail -1 <<<"$stream")" '"done_reason":"length"'
# Tokens are sent 5 ms of real time apart at least, 0.5 s of this clock:
# the last line, stamped at the exact end, must not go back past them.
created_at_rises() {
	curl -s -m 20 "$URL_main/api/generate" \
		-d '{"model":"tinyllama","prompt":"times","options":{"num_predict":40}}' >"$TMP/times.ndjson"
	python3 - "$TMP/times.ndjson" <<'PY'
import json, re, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
def when(text):
    m = re.fullmatch(r"(.*T[0-9:]+)(?:\.([0-9]+))?Z", text)
    return (m.group(1), int((m.group(2) or "").ljust(9, "0")))
times = [when(l["created_at"]) for l in lines]
back = [i for i in range(1, len(times)) if times[i] < times[i - 1]]
if back or len(lines) < 2 or not lines[-1].get("done"):
    print("      %d lines, back at %s: %s" % (len(lines), back,
        [lines[i]["created_at"] for i in back[:1] for i in (i - 1, i)]))
    sys.exit(1)
PY
}
check "a stream's created_at never goes back" created_at_rises

# Ollama's pending queue is a channel of --max-queue: with 0, a request
# is taken when the loop that loads is idle, and refused while it works.
noqueue_one_at_a_time() {
	local first
	http POST "$URL_noqueue/api/generate" '{"model":"cold:1","prompt":"x","options":{"num_predict":1}}' >"$TMP/first.out" &
	first=$!
	for _ in $(seq 1 100); do
		[ "$(emu_sched noqueue loads)" -eq 1 ] && break
		sleep 0.05
	done
	eq "$(http POST "$URL_noqueue/api/generate" '{"model":"cold:1","prompt":"y"}')" \
		'503 {"error":"server busy, please try again.  maximum pending requests exceeded"}' || return 1
	wait "$first"
	has "$(cat "$TMP/first.out")" '200 {'
}
check "with a queue bound of 0, a request is taken while the loop is idle, refused while it loads" \
	noqueue_one_at_a_time

# --seed: the same seed and the same requests give the same faults; another
# seed, others. Each emulator is started, asked 30 times, and stopped.
faults_of() { # SEED: the statuses of 30 requests, in order
	local codes="" i
	start_emu "seed$1" --speed inf --fail-rate 0.5 --seed "$1"
	local url_var="URL_seed$1"
	for i in $(seq 1 30); do
		codes="$codes $(curl -s -m 10 -o /dev/null -w '%{http_code}' "${!url_var}/api/generate" \
			-d '{"model":"tinyllama","prompt":"x","stream":false,"options":{"num_predict":1}}')"
	done
	local pid_var="PID_seed$1"
	end_pid "${!pid_var}"
	forget_pid "${!pid_var}"
	echo "$codes"
}
seeded() {
	local a b c
	a=$(faults_of 7)
	b=$(faults_of 7)
	c=$(faults_of 8)
	[ "$a" = "$b" ] && [ "$a" != "$c" ] && has "$a" 500 >/dev/null && has "$a" 200 >/dev/null ||
		{ echo "      seed 7: $a"; echo "      again: $b"; echo "      seed 8: $c"; return 1; }
}
check "--seed gives the same faults again, and another seed others" seeded
check "--fail-rate answers 500 before any byte" \
	has "$(http POST "$URL_fail/api/generate" '{"model":"tinyllama","prompt":"x","stream":false}')" '500 {"error":'
# Mid-reply: the status line is out, then less body than its Content-Length
# (curl's 18). A close before the status line would tell a client nothing
# of a reply broken halfway.
drop_breaks() {
	local rc=0 code
	code=$(curl -s -m 10 -o /dev/null -w '%{http_code}' "$URL_drop/api/generate" \
		-d '{"model":"tinyllama","prompt":"x","stream":false,"options":{"num_predict":40}}') || rc=$?
	[ "$rc" -eq 18 ] && [ "$code" = 200 ] || { echo "      status $code, curl exit $rc"; return 1; }
}
check "--drop-rate closes the connection mid-reply" drop_breaks
garbage_is_not_json() {
	local out
	out=$(curl -s -m 10 "$URL_garbage/api/generate" \
		-d '{"model":"tinyllama","prompt":"x","options":{"num_predict":20}}')
	grep -q '{"model":garbage' <<<"$out" && tail -1 <<<"$out" | grep -q '"done":true'
}
check "--garbage-rate puts one line of invalid JSON in a stream" garbage_is_not_json
stall_drops() {
	local rc=0 start end
	start=$(date +%s%N)
	curl -s -m 10 -o /dev/null "$URL_stall/api/generate" \
		-d '{"model":"tinyllama","prompt":"x","options":{"num_predict":20}}' || rc=$?
	end=$(date +%s%N)
	[ "$rc" -ne 0 ] && [ "$rc" -ne 28 ] && [ $(((end - start) / 1000000)) -ge 250 ]
}
check "--stall-rate stops the reply, then drops it after --stall-ms" stall_drops
stall_drops_whole() {
	local rc=0 start ms
	start=$(date +%s%N)
	curl -s -m 10 -o /dev/null "$URL_stall/api/generate" \
		-d '{"model":"tinyllama","prompt":"x","stream":false,"options":{"num_predict":20}}' || rc=$?
	ms=$((($(date +%s%N) - start) / 1000000))
	[ "$rc" -ne 0 ] && [ "$rc" -ne 28 ] && [ "$ms" -ge 250 ] ||
		{ echo "      curl exit $rc after $ms ms"; return 1; }
}
check "--stall-rate drops a whole reply too, after --stall-ms" stall_drops_whole

# One request of each status more, and each is counted under its own.
emu_stats() { curl -s -m 20 "$URL_main/emu/stats" >"$TMP/stats.$1"; }
counted_by_status() {
	emu_stats before
	http POST "$URL_main/api/generate" '{"model":"foo","prompt":"x"}' >/dev/null
	http POST "$URL_main/api/generate" >/dev/null
	emu_stats after
	python3 - "$TMP/stats.before" "$TMP/stats.after" <<'PY'
import json, sys
b, a = (json.load(open(f))["by_endpoint"]["/api/generate"] for f in sys.argv[1:])
grew = {k: a[k] - b.get(k, 0) for k in a if a[k] != b.get(k, 0)}
if grew != {"400": 1, "404": 1}:
    print("      before %s, after %s" % (b, a))
    sys.exit(1)
PY
}
check "/emu/stats counts requests by endpoint and status" counted_by_status
# tinyllama was loaded, unloaded with keep_alive 0, and loaded again above.
loads_counted() {
	emu_stats now
	python3 -c 'import json,sys
m = json.load(open(sys.argv[1]))["models"]["tinyllama:latest"]
ok = m["loads"] >= 2 and m["unloads"] >= 1
print("      got %s" % m) if not ok else None
sys.exit(0 if ok else 1)' "$TMP/stats.now"
}
check "/emu/stats counts loads and unloads per model" loads_counted
# DELETE /api/delete as Ollama's: the files go, a loaded runner stays.
http POST "$URL_main/api/generate" '{"model":"qwen2.5-coder:7b"}' >/dev/null
check "delete without a body is a 400" \
	has "$(http DELETE "$URL_main/api/delete")" '400 {"error":'
check "delete without a model is a 400, as Ollama's" \
	eq "$(http DELETE "$URL_main/api/delete" '{}')" '400 {"error":"model is required"}'
# Ollama's handler writes nothing once the model is gone: a bare 200.
check "delete of a model is a 200 with an empty body" \
	eq "$(http DELETE "$URL_main/api/delete" '{"model":"qwen2.5-coder:7b"}')" '200 '
check "tags no longer list a deleted model" \
	sh -c "! curl -s '$URL_main/api/tags' | grep -q qwen2.5-coder:7b"
check "a request for a deleted model is a 404" \
	has "$(http POST "$URL_main/api/generate" '{"model":"qwen2.5-coder:7b","prompt":"x"}')" "404 {\"error\":\"model 'qwen2.5-coder:7b' not found\"}"
check "an unload of a deleted model is a 404 too" \
	eq "$(http POST "$URL_main/api/generate" '{"model":"qwen2.5-coder:7b","keep_alive":0}')" \
	"404 {\"error\":\"model 'qwen2.5-coder:7b' not found\"}"
check "a deleted model that was loaded stays loaded" \
	has "$(http GET "$URL_main/api/ps")" '"name":"qwen2.5-coder:7b"'
# By its old field, "name": a 404 for the model, not for an empty name.
check "delete of a model already deleted is a 404" \
	eq "$(http DELETE "$URL_main/api/delete" '{"name":"qwen2.5-coder:7b"}')" \
	"404 {\"error\":\"model 'qwen2.5-coder:7b' not found\"}"

# A client that hangs up while its request waits or runs with nothing to
# send yet: Ollama drops the request. A whole reply of 250 tokens at 10/s
# would hold the one slot for 25 s.
slot_given_back() {
	local t0 ms
	curl -s -m 1 -o /dev/null "$URL_gone/api/generate" \
		-d '{"model":"a:1","prompt":"x","stream":false,"options":{"num_predict":250}}' || :
	t0=$(date +%s%N)
	has "$(http POST "$URL_gone/api/generate" '{"model":"a:1","prompt":"x","stream":false,"options":{"num_predict":1}}')" '200 {' || return 1
	ms=$((($(date +%s%N) - t0) / 1000000))
	[ "$ms" -lt 10000 ] || { echo "      the next request took $ms ms"; return 1; }
}
check "a client that leaves a running request gives its slot back at once" slot_given_back
# B waits in the queue for A's runner to go; its client leaves first (at
# 1 s, A's at 5 s: room for a slow start under the sanitizers). A ends
# (its client leaves too): B must not load, evicting A for no one.
served_on() {
	curl -s "$URL_gone/emu/stats" | python3 -c 'import json, sys
print(json.load(sys.stdin)["models"].get(sys.argv[1], {}).get("requests", 0))' "$1"
}
queue_place_given_back() {
	local before a _
	before=$(served_on a:1)
	curl -s -m 5 -o /dev/null "$URL_gone/api/generate" \
		-d '{"model":"a:1","prompt":"x","options":{"num_predict":250}}' &
	a=$!
	# A holds the slot before B comes.
	for _ in $(seq 1 100); do
		[ "$(served_on a:1)" -gt "$before" ] && break
		sleep 0.05
	done
	curl -s -m 1 -o /dev/null "$URL_gone/api/generate" \
		-d '{"model":"b:1","prompt":"x","options":{"num_predict":1}}' || :
	wait "$a" || :
	# Queued behind B, had it stayed, C is served after it.
	has "$(http POST "$URL_gone/api/generate" '{"model":"a:1","prompt":"x","stream":false,"options":{"num_predict":1}}')" '200 {' || return 1
	curl -s "$URL_gone/emu/stats" | python3 -c 'import json, sys
s = json.load(sys.stdin)
b = s["models"].get("b:1", {}).get("loads", 0)
ok = b == 0 and s["clients_gone"] >= 2
print("      b:1 loads %d, clients gone %d" % (b, s["clients_gone"])) if not ok else None
sys.exit(0 if ok else 1)'
}
check "a client that leaves the queue gives its place back: its model never loads" queue_place_given_back
# Go takes a client's half-close (shutdown(SHUT_WR)) for a cancel too; that
# client reads Ollama's answer to it.
half_close_reads_499() {
	python3 - "${URL_gone##*:}" <<'PY'
import http.client, json, socket, sys, time
port = int(sys.argv[1])
def served():
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/emu/stats")
    return json.load(c.getresponse())["models"].get("a:1", {}).get("requests", 0)
before = served()
body = json.dumps({"model": "a:1", "prompt": "x", "stream": False,
                   "options": {"num_predict": 250}}).encode()
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall(b"POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
          % len(body) + body)
# Running, it waits 25 s for its whole answer.
for _ in range(200):
    if served() > before:
        break
    time.sleep(0.05)
s.shutdown(socket.SHUT_WR)
reply = b""
while True:
    d = s.recv(65536)
    if not d:
        break
    reply += d
head, _, got = reply.partition(b"\r\n\r\n")
if not head.startswith(b"HTTP/1.1 499 ") or got != b'{"error":"request canceled"}':
    print("      got %r" % reply)
    sys.exit(1)
PY
}
check "a client that half-closes while its request runs reads 499 request canceled" half_close_reads_499

# A model still loading is not loaded yet, as in Ollama since 0.30: /api/ps
# does not list it, an unload does not touch it, and the load stops when
# the client it runs for leaves.
cold_stat() {
	curl -s "$URL_cold/emu/stats" | python3 -c 'import json, sys
s = json.load(sys.stdin)
print(s[sys.argv[1]] if sys.argv[1] in s else s["scheduler"][sys.argv[1]])' "$1"
}
cold_until() {
	for _ in $(seq 1 100); do
		[ "$(cold_stat "$1")" = "$2" ] && return 0
		sleep 0.05
	done
	echo "      $1 is $(cold_stat "$1"), not $2"
	return 1
}
curl -s -m 0.5 -o /dev/null "$URL_cold/api/generate" \
	-d '{"model":"cold:1","prompt":"x","stream":false,"options":{"num_predict":1}}' || :
check "a load whose client leaves stops" cold_until aborted_loads 1
check "and the model is not there" cold_until resident 0
curl -s -m 20 -o "$TMP/cold.body" "$URL_cold/api/generate" \
	-d '{"model":"cold:1","prompt":"x","stream":false,"options":{"num_predict":1}}' &
cold_client=$!
check "a model loads for the next request" cold_until resident 1
check "while it loads, ps does not list it" \
	eq "$(http GET "$URL_cold/api/ps")" '200 {"models":[]}'
check "an unload of it then is answered" \
	has "$(http POST "$URL_cold/api/generate" '{"model":"cold:1","keep_alive":0}')" '"done_reason":"unload"'
wait "$cold_client" || :
check "and the request it loaded for is served" has "$(cat "$TMP/cold.body")" '"done":true'
check "for the unload did nothing: ps lists the model" \
	has "$(http GET "$URL_cold/api/ps")" '"name":"cold:1"'

for name in main noqueue fail drop garbage stall big order gone cold; do
	pid_var=PID_$name
	check "ollamax-emu ($name) is still running" kill -0 "${!pid_var}"
done
# Stopped mid-stream, the last line says so, as Ollama's error line does:
# a client must not take the answer so far for the whole.
cut_stream_says_so() {
	curl -sN -m 20 "$URL_term/api/generate" \
		-d '{"model":"a:1","prompt":"x","options":{"num_predict":100}}' >"$TMP/cut.ndjson" &
	local c=$! _
	for _ in $(seq 1 100); do
		grep -q '"done":false' "$TMP/cut.ndjson" && break
		sleep 0.05
	done
	kill -TERM "$PID_term"
	wait "$c" || :
	gone_within 10 "$PID_term" || return 1
	wait "$PID_term" || :
	has "$(tail -n 1 "$TMP/cut.ndjson")" '{"error":"server shutting down"}'
}
check "a stream cut by SIGTERM ends with an error line" cut_stream_says_so
# SIGTERM while requests run, wait and upload, and clients keep coming:
# the emulator stops with exit 0, and every request it took gets a status
# line, 503 for those not served; a client it did not take is refused.
stop_under_load() {
	local failed=0 rc=0
	python3 - "${URL_stop##*:}" "$PID_stop" <<'PY' || failed=1
import http.client, json, os, signal, socket, sys, threading, time
port, pid = int(sys.argv[1]), int(sys.argv[2])
CLIENTS = 8
def post(body, whole=True):
    data = json.dumps(body).encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    s.sendall(b"POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
              % len(data) + (data if whole else data[:5]))
    return s
def reply(s):
    buf = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            buf += d
    except ConnectionResetError:
        pass
    s.close()
    return buf
asked = 0
def stats():
    global asked
    asked += 1
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/emu/stats")
    return json.load(c.getresponse())
def taken(n):
    """Until the emulator has taken n requests besides these looks."""
    for _ in range(200):
        if stats()["requests"] - asked >= n:
            return
        time.sleep(0.05)
    sys.exit("      the emulator took fewer than %d requests" % n)
whole = {"model": "a:1", "prompt": "x", "stream": False}
runs = post({"model": "a:1", "prompt": "x", "options": {"num_predict": 100}})
first = b""
while b'"done":false' not in first:
    d = runs.recv(65536)
    if not d:
        sys.exit("      the stream ended before its first line")
    first += d
uploads = post(whole, whole=False)
waits = post(whole)
taken(3)
outcomes = {}
lock = threading.Lock()
until = time.monotonic() + 5
def client():
    while time.monotonic() < until:
        try:
            r = reply(post(whole))
            what = "status" if r.startswith(b"HTTP/1.1 ") else "eof"
        except ConnectionRefusedError:
            what = "refused"
        except (ConnectionResetError, BrokenPipeError):
            what = "reset"
        with lock:
            outcomes[what] = outcomes.get(what, 0) + 1
        if what == "refused":
            return
threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
for t in threads:
    t.start()
taken(3 + CLIENTS)
os.kill(pid, signal.SIGTERM)
got = {"runs": first + reply(runs), "waits": reply(waits), "uploads": reply(uploads)}
for t in threads:
    t.join()
for _ in range(200):
    try:
        if open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[0] == "Z":
            break
    # Reaped between the open and the read: ESRCH, not ENOENT.
    except (FileNotFoundError, ProcessLookupError):
        break
    time.sleep(0.05)
bad = []
if not (got["runs"].startswith(b"HTTP/1.1 200 ") and
        b'{"error":"server shutting down"}' in got["runs"]):
    bad.append("runs")
for k in ("waits", "uploads"):
    if not (got[k].startswith(b"HTTP/1.1 503 ") and
            got[k].endswith(b'{"error":"server shutting down"}')):
        bad.append(k)
if outcomes.get("eof", 0) > 0 or outcomes.get("status", 0) < CLIENTS:
    bad.append("clients")
if bad:
    for k in got:
        print("      %s: %r" % (k, got[k][:60] + b"..." + got[k][-40:]))
    print("      clients: %s" % outcomes)
    sys.exit(1)
PY
	gone "$PID_stop" || { echo "      still running 10 s after SIGTERM"; return 1; }
	wait "$PID_stop" || rc=$?
	forget_pid "$PID_stop"
	[ "$rc" -eq 0 ] || { echo "      exit $rc"; failed=1; }
	return "$failed"
}
check "a SIGTERM under load: exit 0, a status line for every request taken" stop_under_load
stops_cleanly() { kill -TERM "$PID_main"; gone_within 10 "$PID_main" && wait "$PID_main"; }
check "ollamax-emu stops on SIGTERM with exit 0" stops_cleanly

# Out of descriptors for a while: an accept that fails takes the listening
# socket out of the server's poll set. Once the clients have gone, new
# ones are taken again, within a second or two.
start_emu fdless --speed 0.01
prlimit --pid "$PID_fdless" --nofile=32:32
flood_then_asked() {
	python3 - "${URL_fdless##*:}" <<'PY' || return 1
import json, socket, sys, time
port, held = int(sys.argv[1]), []
for i in range(300):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    body = json.dumps({"model": "tinyllama", "prompt": "x%d" % i}).encode()
    s.sendall(b"POST /api/generate HTTP/1.1\r\nHost: x\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body) + body)
    held.append(s)
time.sleep(2)
for s in held:
    s.close()
PY
	for _ in $(seq 1 30); do
		curl -s -m 1 -o /dev/null "$URL_fdless/api/version" && return 0
		sleep 0.1
	done
	echo "      not answered 4 s after the clients left"
	return 1
}
check "out of descriptors for a while, the emulator takes clients again once they go" flood_then_asked
finish
