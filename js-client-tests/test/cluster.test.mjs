// Three `fawkes serve` processes joined over one redis-server (both started
// here, on free ports) act as one server for phoenix.js clients connected to
// different nodes: relayed messages, presence joins and leaves (each diff
// seen once), a `disconnect` for a socket id, and one LongPoll client whose
// requests a tiny proxy sends to two nodes in turn.
import {describe, it, before, after} from "node:test"
import assert from "node:assert/strict"
import {execFileSync, spawnSync} from "node:child_process"
import {mkdtempSync, rmSync, writeFileSync} from "node:fs"
import http from "node:http"
import os from "node:os"
import path from "node:path"
import {LongPoll, Presence} from "phoenix"
import {
  binary, startServer, freePort, newSocket, connect, joinOk, pushed, nextEvent, eventually,
  presenceKeys, settle, within,
} from "./helpers.mjs"

const SECRET_KEY_BASE = "the cluster's secret_key_base: 64 bytes or more, as Phoenix makes them"
const SALT = "user socket"
const API_SECRET = "the cluster test's api secret"

const dir = mkdtempSync(path.join(os.tmpdir(), "fawkes-cluster-"))
after(() => rmSync(dir, {recursive: true, force: true}))

/** redis-server on a free loopback port, without persistence. */
async function startRedis(){
  const found = spawnSync("sh", ["-c", "command -v redis-server"], {encoding: "utf8"})
  const bin = found.stdout.trim()
  assert.ok(bin, "redis-server is not installed (./scripts/setup installs it)")
  return startServer(bin,
    port => ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    {label: "redis-server"})
}

/** One node: token auth naming the socket `users_socket:<user_id>`, presence keyed by user_id. */
function startNode(redis, name){
  const file = path.join(dir, `${name}.toml`)
  writeFileSync(file, `
[cluster]
secret_key_base = "${SECRET_KEY_BASE}"

[api]
broadcast_secret = "${API_SECRET}"

[[socket]]
path = "/socket"
[socket.auth]
secret_key_base = "${SECRET_KEY_BASE}"
salt = "${SALT}"
max_age = 600
socket_id = "users_socket:{user_id}"

[[socket.topic]]
pattern = "room:*"
relay = ["new_msg"]
presence = true
presence_key = "user_id"
`)
  return startServer(binary("fawkes"),
    port => ["serve", "--port", String(port), "--bind", "127.0.0.1", "--config", file,
      "--redis-url", `redis://127.0.0.1:${redis.port}`, "--node-name", name],
    {label: `fawkes ${name}`, env: {RUST_LOG: "info", NO_COLOR: "1"}})
}

/** A Phoenix.Token for `user_id`, minted by `fawkes token sign`. */
function token(userId){
  return execFileSync(binary("fawkes"),
    ["token", "sign", "--secret-key-base", SECRET_KEY_BASE, "--salt", SALT, JSON.stringify({user_id: userId})],
    {encoding: "utf8", timeout: 10000}).trim()
}

/** A phoenix.js client of `node` joined to `topic` as `user`, with its Presence. */
async function member(node, user, topic, opts = {}){
  const socket = newSocket(opts.url || node, {params: {token: token(user)}, ...opts})
  await connect(socket)
  const channel = socket.channel(topic, {})
  const presence = new Presence(channel)
  // Every join a presence_diff announced, as "key phx_ref": none may come twice.
  const announced = []
  socket.onMessage(({topic: t, event, payload}) => {
    if(t !== topic || event !== "presence_diff"){ return }
    for(const [key, {metas}] of Object.entries(payload.joins)){
      for(const meta of metas){ announced.push(`${key} ${meta.phx_ref}`) }
    }
  })
  await joinOk(channel)
  return {user, socket, channel, presence, announced}
}

/** Waits until `member`'s presence list is exactly `users`. */
function lists(m, users, ms = 20000){
  const want = [...users].sort().join()
  return eventually(`${m.user} to list ${want}`, () => presenceKeys(m.presence).join() === want, ms)
}

function noDuplicateDiffs(m){
  assert.deepEqual(m.announced, [...new Set(m.announced)], `${m.user} saw a join twice`)
}

async function apiBroadcast(node, topic, event, payload){
  const res = await fetch(`${node.httpUrl}/api/broadcast`, {
    method: "POST",
    headers: {"content-type": "application/json", authorization: `Bearer ${API_SECRET}`},
    body: JSON.stringify({topic, event, payload}),
    signal: AbortSignal.timeout(5000),
  })
  assert.equal(res.status, 200, await res.text())
}

/** An HTTP proxy that sends each request to the next of `nodes`, in turn. */
async function roundRobin(nodes){
  const port = await freePort()
  const seen = nodes.map(() => 0)
  let next = 0
  const server = http.createServer((req, res) => {
    const i = next++ % nodes.length
    seen[i]++
    const upstream = http.request({
      host: "127.0.0.1", port: nodes[i].port, method: req.method, path: req.url,
      headers: {...req.headers, host: `127.0.0.1:${nodes[i].port}`},
    }, answer => {
      res.writeHead(answer.statusCode, answer.headers)
      answer.pipe(res)
    })
    upstream.on("error", error => { res.writeHead(502); res.end(String(error)) })
    req.pipe(upstream)
  })
  await new Promise(resolve => server.listen(port, "127.0.0.1", resolve))
  return {port, seen, close: () => new Promise(resolve => { server.closeAllConnections(); server.close(resolve) })}
}

describe("a cluster of three fawkes serve nodes over redis", () => {
  let redis, a, b, c
  before(async () => {
    redis = await startRedis()
    ;[a, b, c] = await Promise.all([startNode(redis, "a"), startNode(redis, "b"), startNode(redis, "c")])
  })

  it("clients on different nodes see each other's messages and presences, each diff once", {timeout: 60000}, async () => {
    const topic = "room:cluster"
    const alice = await member(a, "alice", topic)
    await lists(alice, ["alice"])
    const bob = await member(b, "bob", topic)
    const carol = await member(c, "carol", topic)
    for(const m of [alice, bob, carol]){ await lists(m, ["alice", "bob", "carol"]) }

    // A message pushed on node a reaches the clients of b and c, not alice.
    const own = []
    alice.channel.on("new_msg", payload => own.push(payload))
    const toBob = nextEvent(bob.channel, "new_msg", 10000)
    const toCarol = nextEvent(carol.channel, "new_msg", 10000)
    assert.equal((await pushed(alice.channel, "new_msg", {body: "hi from a"})).status, "ok")
    assert.deepEqual(await toBob, {body: "hi from a"})
    assert.deepEqual(await toCarol, {body: "hi from a"})

    // bob leaves the topic on node b: gone from every list.
    assert.equal((await settle(bob.channel.leave(), "bob's leave")).status, "ok")
    await lists(alice, ["alice", "carol"])
    await lists(carol, ["alice", "carol"])
    assert.deepEqual(own, [], "broadcast_from skips its sender")
    for(const m of [alice, bob, carol]){ noDuplicateDiffs(m) }
    // Every node lists the cluster: a newcomer on b gets all of it at once.
    const dave = await member(b, "dave", topic)
    await lists(dave, ["alice", "carol", "dave"])
  })

  it("a disconnect broadcast on one node closes the socket with that id on another", {timeout: 30000}, async () => {
    const erin = await member(c, "erin", "room:bye")
    const closed = new Promise(resolve => erin.socket.onClose(resolve))
    // Until the nodes are all subscribed a broadcast may not cross: repeat.
    let done = false
    closed.then(() => { done = true })
    await within(20000, "erin's socket to close", (async () => {
      while(!done){
        await apiBroadcast(a, "users_socket:erin", "disconnect", {})
        await Promise.race([closed, new Promise(resolve => setTimeout(resolve, 300))])
      }
    })())
  })

  it("a LongPoll client whose requests alternate between two nodes", {timeout: 60000}, async () => {
    const proxy = await roundRobin([a, b])
    try {
      const topic = "room:lp"
      const watcher = await member(c, "watcher", topic)
      const lp = await member(null, "polly", topic, {
        url: `ws://127.0.0.1:${proxy.port}/socket`, transport: LongPoll,
      })
      await lists(watcher, ["polly", "watcher"])
      await lists(lp, ["polly", "watcher"])
      const toLp = nextEvent(lp.channel, "new_msg", 15000)
      assert.equal((await pushed(watcher.channel, "new_msg", {body: "to polly"})).status, "ok")
      assert.deepEqual(await toLp, {body: "to polly"})
      const toWatcher = nextEvent(watcher.channel, "new_msg", 15000)
      assert.equal((await pushed(lp.channel, "new_msg", {body: "from polly"})).status, "ok")
      assert.deepEqual(await toWatcher, {body: "from polly"})
      assert.ok(proxy.seen[0] > 1 && proxy.seen[1] > 1, `requests per node: ${proxy.seen}`)
      assert.equal((await settle(lp.channel.leave(), "polly's leave")).status, "ok")
      await lists(watcher, ["watcher"])
    } finally {
      await proxy.close()
    }
  })
})
