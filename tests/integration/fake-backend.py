#!/usr/bin/env python3
"""An Ollama that misbehaves on purpose, for backend-faults.sh (and, as
the emulator when the mode gives "emu_speed", for replay.sh).

Usage: fake-backend.py PORT_FILE MODE_FILE. Listens on 127.0.0.1, on a free
port written to PORT_FILE. Each request reads MODE_FILE (JSON): "gen",
"load", "unload" and "ps" pick how generate calls, loads, unloads and
/api/ps answer; with "emu_speed", /emu/stats answers as an emulator's of
that speed and 2 slots. Every request is appended to MODE_FILE.log as
"METHOD PATH KIND MODEL", and each answer of /api/show or of an unload,
once sent, as "SHOWN MODEL" or "UNLOADED MODEL". GET /fake/reset forgets
what is loaded, and any load whose /api/ps is still to be held. In mode "gate", a call logs "GATE PROMPT", then
waits for MODE_FILE.open before it is answered. /api/ps lists what a
request loaded with the context it asked, 2048 at most (the fake's models
are trained for no more, whatever /api/show says), and 3000 MB, or what
"mb" in the mode gives its model when it loaded.
"""
import json
import os
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT_FILE, MODE_FILE = sys.argv[1], sys.argv[2]
# Each model loaded: its context and size in MB, as /api/ps lists them.
loaded = {}
# Taken by the /api/ps that mode "held" holds, until it is answered.
held = threading.Lock()
# Whether the first /api/ps after the latest load is still to come, for
# mode "loadlate".
ps_after_load = threading.Event()


def mode():
    # A test rewrites the file as a request comes: read in the moment
    # between its truncation and its write, it is empty.
    for _ in range(50):
        try:
            with open(MODE_FILE) as f:
                return json.load(f)
        except OSError:
            return {}
        except ValueError:
            time.sleep(0.01)
    return {}


def logged(line):
    with open(MODE_FILE + ".log", "a") as f:
        f.write(line + "\n")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def handle_one_request(self):
        # A caller that hung up (a timeout of the broker's, on purpose)
        # is no fault of the fake's: no traceback in its log.
        try:
            super().handle_one_request()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def reply(self, code, body, ctype="application/json"):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def stream(self, lines, pause=0.0, hold=0.0):
        """Sends lines as chunks, then holds the body's end back for hold
        seconds."""
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for line in lines:
            data = line.encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
            time.sleep(pause)
        time.sleep(hold)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def do_GET(self):
        logged("GET %s" % self.path)
        if self.path == "/api/tags":
            names = ["tinyllama:latest", "qwen2.5-coder:7b"]
            # "crowded": more than the 64 models a list holds, listed
            # first, as Ollama lists the newest.
            if mode().get("tags") == "crowded":
                names = ["other-%d:latest" % i for i in range(70)] + names
            return self.reply(200, json.dumps(
                {"models": [{"name": n, "model": n, "size": 1 << 30}
                            for n in names]}))
        if self.path == "/emu/stats" and "emu_speed" in mode():
            return self.reply(200, json.dumps(
                {"speed": mode()["emu_speed"], "slot_busy_s": [0, 0],
                 "scheduler": {"loads": 0, "evictions": 0}}))
        if self.path == "/fake/reset":
            loaded.clear()
            ps_after_load.clear()
            return self.reply(200, "{}")
        if self.path == "/api/ps":
            if mode().get("ps") == "fail":
                return self.reply(500, '{"error":"ps is broken"}')
            if mode().get("ps") == "trickle":
                # A byte at a time, each within stall_timeout of the last,
                # for longer than anything should wait on a list.
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "60")
                self.end_headers()
                for _ in range(60):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.5)
                return None
            if mode().get("ps") == "silent":
                # Past connect_timeout and stall_timeout: the caller has
                # hung up by then.
                time.sleep(3)
                return None
            if mode().get("ps") == "loadlate" and ps_after_load.is_set():
                # The first after a load held "hold" seconds (9), as
                # Ollama holds /api/ps while a runner exits; the others
                # answered at once. Past connect_timeout and
                # stall_timeout, the caller has hung up by then.
                ps_after_load.clear()
                time.sleep(mode().get("hold", 9))
            # "crowded": more than the 64 models read, listed first;
            # "empty": none, as an Ollama just restarted lists them.
            listed = sorted(dict(loaded).items())
            if mode().get("ps") == "empty":
                listed = []
            if mode().get("ps") == "crowded":
                listed = [("other-%d:latest" % i, (2048, 3000))
                          for i in range(70)] + listed
            body = json.dumps({"models": [
                {"name": n, "model": n, "size": mb << 20,
                 "size_vram": mb << 20, "context_length": ctx}
                for n, (ctx, mb) in listed]})
            if mode().get("ps") == "held" and held.acquire(blocking=False):
                # One at a time: what was loaded when asked, answered
                # once MODE_FILE.psopen exists (10 s at most), after what
                # happens meanwhile. Others asked meanwhile answer at once.
                try:
                    logged("PS HELD")
                    for _ in range(200):
                        if os.path.exists(MODE_FILE + ".psopen"):
                            break
                        time.sleep(0.05)
                    return self.reply(200, body)
                finally:
                    held.release()
            return self.reply(200, body)
        self.reply(404, "404 page not found", "text/plain")

    def do_POST(self):
        req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        model = req["model"]
        if self.path == "/api/show":
            logged("POST %s %s" % (self.path, model))
            # Trained for the 2048 that /api/ps gives every model; "bare":
            # without what it was trained for; "long": trained for more.
            # "slow": read from a cold disk, past connect_timeout.
            how = mode().get("show")
            trained = 32768 if how == "long" else 2048
            if how == "slow":
                time.sleep(1.3)
            self.reply(200, "{}" if how == "bare" else json.dumps({
                "model_info": {"general.architecture": "llama",
                               "llama.context_length": trained},
                "capabilities": ["completion"]}))
            return logged("SHOWN %s" % model)
        kind = ("unload" if req.get("keep_alive") == 0 else
                "load" if req.get("prompt", "") == "" else "gen")
        logged("POST %s %s %s" % (self.path, kind, model))
        how = mode().get(kind, "ok")
        done = {"model": model, "response": "", "done": True,
                "done_reason": "stop", "prompt_eval_count": 5,
                "eval_count": 3}
        if how == "gate":
            # Held until the test opens the gate (30 s at most), in the
            # order it came.
            logged("GATE %s" % req.get("prompt", ""))
            for _ in range(600):
                if os.path.exists(MODE_FILE + ".open"):
                    break
                time.sleep(0.05)
        if kind == "unload":
            if how == "linger":
                # Listed 2 s more, as a runner that takes its time to
                # exit; "GONE MODEL" is logged before it is no longer.
                def gone():
                    logged("GONE %s" % model)
                    loaded.pop(model, None)
                threading.Timer(2, gone).start()
            else:
                loaded.pop(model, None)
            self.reply(200, json.dumps(done))
            return logged("UNLOADED %s" % model)
        if how == "500":
            return self.reply(500, '{"error":"CUDA out of memory"}')
        if how == "503":
            return self.reply(503, '{"error":"server busy, please try '
                              'again.  maximum pending requests exceeded"}')
        if how == "429":
            # A proxy's limit, its error an object.
            return self.reply(429, '{"error":{"message":"rate limited",'
                              '"type":"requests"}}')
        if how == "500plain":
            return self.reply(500, "Internal \x01Server Error\n",
                              "text/plain")
        if how == "404reset":
            # Ollama's "not found", then the connection reset before the
            # body it announced is whole.
            data = ('{"error":"model \\"%s\\" not found, try pulling it '
                    'first"}\n' % model).encode()
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data) + 64))
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
            # A reset discards what the client has not read yet: the
            # answer is left time to be read first.
            time.sleep(0.2)
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        if how == "html":
            # Another server than Ollama at the url, with a page for any
            # path.
            return self.reply(200, "<html><body>Welcome</body></html>\n",
                              "text/html")
        if how == "404plain":
            return self.reply(404, "404 page not found", "text/plain")
        if how == "301":
            # A proxy that moved the API elsewhere.
            data = b"<a href=\"/v2/api/generate\">Moved Permanently</a>."
            self.send_response(301)
            self.send_header("Location", "/v2/api/generate")
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        if kind == "load" and how == "lost":
            # Come to a backend that no longer holds the model (restarted,
            # or its keep-alive ran out): loaded again, listed only once
            # the load is over, "hold" seconds (3) on, as Ollama lists it.
            loaded.pop(model, None)
            time.sleep(mode().get("hold", 3))
        if kind == "load" and how == "headersonly":
            # 200, then nothing past the stall timeout.
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.end_headers()
            self.wfile.flush()
            time.sleep(3)
            self.close_connection = True
            return None
        if how == "times":
            # One answer, not streamed, with the durations the mode gives.
            return self.reply(200, json.dumps(dict(
                done, prompt_eval_duration=mode()["prompt_eval_duration"],
                eval_duration=mode()["eval_duration"])))
        # Loaded again with another context, as Ollama does, in the
        # place of the one before.
        asked = (req.get("options") or {}).get("num_ctx", 2048)
        loaded[model] = (min(asked, 2048),
                         mode().get("mb", {}).get(model, 3000))
        if kind == "load":
            ps_after_load.set()
            return self.reply(200, json.dumps(done))
        word = {"model": model, "response": "hi", "done": False}
        if how == "long":
            return self.stream([json.dumps(dict(word, response="y" * 4096))
                                + "\n"] * 100 + [json.dumps(done) + "\n"])
        if how == "longlast":
            # Under the cap until a last line, without its newline,
            # takes the answer over it.
            return self.stream([json.dumps(dict(word, response="y" * 4096))
                                + "\n"] * 63 +
                               [json.dumps(dict(word, response="z" * 8192))])
        if how == "badcounts":
            done.update(eval_count=-1, prompt_eval_count=10 ** 12)
        if how == "trickle":
            return self.stream([" "] * 30, pause=0.2)
        if how == "blanklines":
            # Whole lines of blanks, each within the stall timeout, for
            # six times it, then an answer.
            return self.stream(["\r\n", " \n", "\n"] * 10 +
                               [json.dumps(word) + "\n",
                                json.dumps(done) + "\n"], pause=0.2)
        if how == "empty":
            # Past 256 KiB of them (about 55 bytes each), and no end.
            return self.stream([json.dumps(dict(word, response="")) + "\n"]
                               * 6000)
        if how == "holdback":
            # What a parser of tool calls sends for each token it holds
            # back, before the text.
            return self.stream([json.dumps(dict(word, response="")) + "\n"]
                               * 1000 + [json.dumps(word) + "\n",
                                         json.dumps(done) + "\n"])
        if how == "thinking":
            # Thinking longer than the stall timeout, a line at a time,
            # with the few lines without text that its tags make.
            empty = json.dumps(dict(word, response="")) + "\n"
            thought = json.dumps(dict(word, response="",
                                      thinking="hmm")) + "\n"
            return self.stream([empty] * 3 + [thought] * 10 + [empty] * 3 +
                               [json.dumps(word) + "\n",
                                json.dumps(done) + "\n"], pause=0.1)
        if how == "overthink":
            # More thought than any context holds, and no answer.
            thought = json.dumps(dict(word, response="",
                                      thinking="h" * 8192)) + "\n"
            return self.stream([thought] * 200 + [json.dumps(done) + "\n"])
        if how == "drip":
            # A word every 0.1 s, well inside the stall timeout, for 15 s.
            return self.stream([json.dumps(word) + "\n"] * 150 +
                               [json.dumps(done) + "\n"], pause=0.1)
        if how == "garbage":
            # A bad line, then good ones for longer than the stall
            # timeout.
            return self.stream([json.dumps(word) + "\n", "not json\n"] +
                               [json.dumps(word) + "\n"] * 10 +
                               [json.dumps(done) + "\n"], pause=0.2)
        if how == "donehang":
            # The done line, then the body's end held back past the stall
            # timeout.
            return self.stream([json.dumps(word) + "\n",
                                json.dumps(done) + "\n"], hold=3)
        if how == "donetail":
            # The done line, then more than a line's 16 MiB without a
            # newline before the body ends.
            return self.stream([json.dumps(word) + "\n",
                                json.dumps(done) + "\n", "x" * (17 << 20)])
        if how == "halfline":
            # Half a line, then silence past the stall timeout.
            return self.stream([json.dumps(word) + "\n",
                                '{"model":"m","resp'], hold=3)
        if how == "errorhang":
            # Ollama's error line, then the body's end held back past a
            # grace of 1 s.
            return self.stream([json.dumps(word) + "\n",
                                json.dumps({"error": "the runner crashed"})
                                + "\n"], hold=8)
        if how == "emptyerror":
            return self.stream([json.dumps(word) + "\n",
                                json.dumps({"error": ""}) + "\n"])
        if how == "silent":
            # Nothing past first_byte_timeout, then the answer.
            time.sleep(3)
        if how == "control":
            # 200 KB of a control byte, six bytes each once escaped in
            # the JSON that answers a waited run.
            return self.stream([json.dumps(dict(word, response="\x01" *
                                                40000)) + "\n"] * 5 +
                               [json.dumps(done) + "\n"])
        if how == "echo":
            # What the backend was sent, as the answer.
            word["response"] = "system: %s | prompt: %s" % (
                req.get("system", "(none)"), req.get("prompt", ""))
        if how == "nul":
            word["response"] = "h\0i"
        self.stream([json.dumps(word) + "\n", json.dumps(done) + "\n"])


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
with open(PORT_FILE + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(PORT_FILE + ".tmp", PORT_FILE)
server.serve_forever()
