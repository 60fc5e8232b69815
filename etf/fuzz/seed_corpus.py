#!/usr/bin/env python3
"""Writes the seed corpus of the `decode` fuzz target from the interop recordings:
every payload Phoenix published on Redis, every injected message, and the
signed payloads of the Phoenix.Token vectors."""
import json, os, sys, hashlib
here = os.path.dirname(os.path.abspath(__file__))
shared = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "../../../shared/interop")
out = os.path.join(here, "corpus/decode")
os.makedirs(out, exist_ok=True)
blobs = []
cap = json.load(open(os.path.join(shared, "redis_capture.json")))
for a in cap["actions"]:
    blobs += [c["payload_hex"] for c in a["captures"]]
blobs += [c["payload_hex"] for c in cap["background_messages_outside_actions"]]
blobs += [c["payload_hex"] for c in json.load(open(os.path.join(shared, "redis_injection.json")))["cases"]]
tok = json.load(open(os.path.join(shared, "phoenix_token_vectors.json")))
blobs += [v["signed_payload_etf_hex"] for v in tok["vectors"]]
for h in sorted(set(blobs)):
    b = bytes.fromhex(h)
    open(os.path.join(out, hashlib.sha1(b).hexdigest()), "wb").write(b)
print(len(set(blobs)), "seeds in", out)
