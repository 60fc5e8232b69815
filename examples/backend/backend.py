#!/usr/bin/env python3
"""A tiny backend for `fawkes serve` webhooks, Python standard library only.

Run: FAWKES_WEBHOOK_SECRET=change-me python3 examples/backend/backend.py 8000
and `fawkes serve --config examples/backend/fawkes.toml`.

It checks every request's signature and age, then answers:
  connect   -> a user from the verified token's assigns (or refuses)
  join      -> room:lobby for everyone, room:admins for admins only
  handle_in -> new_msg: stamps the author and asks fawkes to broadcast it
"""
import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = os.environ.get("FAWKES_WEBHOOK_SECRET", "change-me").encode()
MAX_SKEW = 300  # seconds: older (or replayed) requests are refused
ADMINS = {1}


def signed(headers, body):
    ts = headers.get("x-fawkes-timestamp", "")
    sig = headers.get("x-fawkes-signature", "")
    if not ts.isdigit() or abs(time.time() - int(ts)) > MAX_SKEW:
        return False
    expected = "sha256=" + hmac.new(SECRET, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(sig, expected)


def connect(req):
    user_id = req["assigns"].get("user_id")  # from the Phoenix.Token
    if user_id is None:
        return {"status": "error"}
    return {"status": "ok", "assigns": {"admin": user_id in ADMINS}}


def join(req):
    if req["topic"] == "room:admins" and not req["assigns"].get("admin"):
        return {"status": "error", "response": {"reason": "admins only"}}
    return {"status": "ok", "response": {"joined": req["topic"]}}


def handle_in(req):
    if req["event"] == "new_msg":
        text = str(req["payload"].get("body", ""))[:500]
        message = {"user_id": req["assigns"]["user_id"], "body": text}
        return {"status": "ok", "response": {}, "broadcast": {"event": "new_msg", "payload": message}}
    return {"status": "error", "response": {"reason": "unknown event"}}


HANDLERS = {"connect": connect, "join": join, "handle_in": handle_in}


class Webhooks(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if not signed(self.headers, body):
            self.send_response(401)
            self.end_headers()
            return
        req = json.loads(body)
        answer = json.dumps(HANDLERS[req["type"]](req)).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    ThreadingHTTPServer(("127.0.0.1", port), Webhooks).serve_forever()
