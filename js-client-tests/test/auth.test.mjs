// `fawkes serve` in front of an existing app, with the real phoenix.js:
// a backend (a real HTTP server started here) answers the webhooks, the
// defaults are closed (cross-origin websocket refused, /api/broadcast needs
// its secret), and Phoenix.Token auth turns a token into assigns.
import {describe, it, before, after} from "node:test"
import assert from "node:assert/strict"
import http from "node:http"
import crypto from "node:crypto"
import {mkdtempSync, writeFileSync, rmSync} from "node:fs"
import {tmpdir} from "node:os"
import path from "node:path"
import {execFileSync} from "node:child_process"
import WebSocket from "ws"
import {LongPoll, Presence} from "phoenix"
import {
  startServer, binary, newSocket, connect, joinOk, settle, eventually, within, sleep, presenceKeys,
} from "./helpers.mjs"

const WEBHOOK_SECRET = "js-webhook-secret"
const API_SECRET = "js-api-secret"
const TIMEOUT_MS = 1500

const dir = mkdtempSync(path.join(tmpdir(), "fawkes-auth-"))
after(() => rmSync(dir, {recursive: true, force: true}))

const backends = []
after(() => { for(const b of backends){ b.closeAllConnections(); b.close() } })

/** A backend answering fawkes' webhooks; checks every signature. */
function startBackend(){
  const seen = {requests: [], badSignatures: 0}
  const server = http.createServer((req, res) => {
    let body = ""
    req.on("data", chunk => { body += chunk })
    req.on("end", () => {
      const ts = req.headers["x-fawkes-timestamp"]
      const expected = "sha256=" + crypto.createHmac("sha256", WEBHOOK_SECRET).update(`${ts}.${body}`).digest("hex")
      const fresh = Math.abs(Date.now() / 1000 - Number(ts)) < 300
      if(req.headers["x-fawkes-signature"] !== expected || !fresh){ seen.badSignatures++ }
      const msg = JSON.parse(body)
      seen.requests.push({path: req.url, msg})
      const answer = value => { res.writeHead(200, {"content-type": "application/json"}); res.end(JSON.stringify(value)) }
      if(req.url === "/join"){
        if(msg.topic === "room:open"){ return answer({status: "ok", response: {hello: msg.assigns.user || "nobody"}}) }
        if(msg.topic === "room:slow"){ return } // never answers
        return answer({status: "error", response: {reason: `${msg.topic} is members only`}})
      }
      res.writeHead(404); res.end("{}")
    })
  })
  backends.push(server)
  return new Promise(resolve => server.listen(0, "127.0.0.1", () => {
    resolve({seen, url: p => `http://127.0.0.1:${server.address().port}${p}`})
  }))
}

/** Starts `fawkes serve` with a config file written from `toml`. */
async function startWithConfig(name, toml, env = {}){
  const file = path.join(dir, `${name}.toml`)
  writeFileSync(file, toml)
  return startServer(binary("fawkes"), port => ["serve", "--port", String(port), "--bind", "127.0.0.1", "--config", file],
    {label: `fawkes (${name})`, env})
}

/** The HTTP status a websocket handshake gets (101 when upgraded). */
function handshakeStatus(url, headers){
  return within(5000, `handshake to ${url}`, new Promise(resolve => {
    const ws = new WebSocket(url, {headers})
    ws.on("upgrade", () => { resolve(101); ws.terminate() })
    ws.on("unexpected-response", (_req, res) => { resolve(res.statusCode); ws.terminate() })
    ws.on("error", () => {})
  }))
}

describe("webhooks: the backend decides who joins what", () => {
  let backend, server
  before(async () => {
    backend = await startBackend()
    server = await startWithConfig("webhooks", `
[[socket]]
path = "/socket"
[socket.webhook]
secret = "${WEBHOOK_SECRET}"
timeout_ms = ${TIMEOUT_MS}

[[socket.topic]]
pattern = "room:*"
[socket.topic.webhook]
join = "${backend.url("/join")}"
`)
  })

  it("allows one topic and denies another with a reason the client receives", {timeout: 10000}, async () => {
    const socket = newSocket(server, {params: {user: "alice"}})
    await connect(socket)
    assert.deepEqual(await joinOk(socket.channel("room:open")), {hello: "alice"})
    const denied = await settle(socket.channel("room:vip").join(), "join room:vip")
    assert.deepEqual(denied, {status: "error", response: {reason: "room:vip is members only"}})
    assert.equal(backend.seen.badSignatures, 0)
    const join = backend.seen.requests.find(r => r.msg.topic === "room:open")
    assert.equal(join.msg.type, "join")
    assert.deepEqual(join.msg.assigns, {user: "alice"})
  })

  it("a backend that never answers is a join error within the timeout; other clients go on", {timeout: 15000}, async () => {
    const slow = newSocket(server, {rejoinAfterMs: () => 60000})
    await connect(slow)
    const started = Date.now()
    const slowChannel = slow.channel("room:slow")
    const slowJoin = settle(slowChannel.join(TIMEOUT_MS * 4), "join room:slow", TIMEOUT_MS * 5)
    await eventually("the backend holds the slow join", () => backend.seen.requests.some(r => r.msg.topic === "room:slow"))
    const other = newSocket(server, {params: {user: "bob"}})
    await connect(other)
    assert.deepEqual(await joinOk(other.channel("room:open")), {hello: "bob"})
    const result = await slowJoin
    const elapsed = Date.now() - started
    assert.deepEqual(result, {status: "error", response: {reason: "backend timeout"}})
    assert.ok(elapsed >= TIMEOUT_MS - 50, `error after ${elapsed} ms, before the ${TIMEOUT_MS} ms timeout`)
    // The refused channel's 60 s rejoin timer would keep this file's
    // process (and the suite) waiting for a minute.
    slowChannel.leave()
    slow.disconnect()
    other.disconnect()
  })
})

describe("closed by default", () => {
  let server
  before(async () => { server = await startWithConfig("closed", "", {FAWKES_API_SECRET: API_SECRET}) })

  const broadcast = headers => fetch(`${server.httpUrl}/api/broadcast`, {
    method: "POST",
    headers: {"content-type": "application/json", ...headers},
    body: JSON.stringify({topic: "room:lobby", event: "news", payload: {n: 1}}),
    signal: AbortSignal.timeout(5000),
  })

  it("POST /api/broadcast without the secret is 401; with it the message arrives", {timeout: 10000}, async () => {
    assert.equal((await broadcast({})).status, 401)
    assert.equal((await broadcast({authorization: "Bearer wrong"})).status, 401)
    const socket = newSocket(server)
    await connect(socket)
    const channel = socket.channel("room:lobby")
    await joinOk(channel)
    const news = new Promise(resolve => channel.on("news", resolve))
    assert.equal((await broadcast({authorization: `Bearer ${API_SECRET}`})).status, 200)
    assert.deepEqual(await within(3000, "news", news), {n: 1})
  })

  it("a cross-origin websocket is refused with 403; the same origin is accepted", {timeout: 10000}, async () => {
    const url = `ws://127.0.0.1:${server.port}/socket/websocket?vsn=2.0.0`
    assert.equal(await handshakeStatus(url, {origin: "https://evil.example"}), 403)
    assert.equal(await handshakeStatus(url, {origin: `http://127.0.0.1:${server.port}`}), 101)
  })
})

const SECRET_KEY_BASE = "the secret_key_base of the Elixir app: 64 bytes or more, as Phoenix makes"
const SALT = "user socket"

/** A Phoenix.Token minted by `fawkes token sign` (the CLI a backend developer debugs with). */
function mint(data, {secretKeyBase = SECRET_KEY_BASE, signedAtMs} = {}){
  const args = ["token", "sign", "--secret-key-base", secretKeyBase, "--salt", SALT]
  if(signedAtMs !== undefined){ args.push("--signed-at-ms", String(signedAtMs)) }
  return execFileSync(binary("fawkes"), [...args, JSON.stringify(data)], {encoding: "utf8", timeout: 10000}).trim()
}

/** Connect attempts that fail: resolves with the first onError message; asserts it never opened. */
async function refusedConnect(socket){
  let opened = false
  socket.onOpen(() => { opened = true })
  const error = new Promise(resolve => socket.onError(e => resolve(e && (e.message || e.type || String(e)))))
  socket.connect()
  const message = await within(5000, "onError", error)
  await sleep(300)
  socket.disconnect()
  assert.equal(opened, false, "a refused socket must not open")
  return message
}

describe("[socket.auth]: Phoenix.Token", () => {
  let server
  before(async () => {
    server = await startWithConfig("auth", `
[[socket]]
path = "/socket"
[socket.auth]
secret_key_base = "${SECRET_KEY_BASE}"
salt = "${SALT}"
max_age = 600
socket_id = "users_socket:{user_id}"

[[socket.topic]]
pattern = "room:*"
presence = true
presence_key = "user_id"
`)
  })

  it("a valid token connects and its presence carries the user from the token", {timeout: 10000}, async () => {
    const socket = newSocket(server, {params: {token: mint({user_id: "ann", name: "Ann"})}})
    await connect(socket)
    const channel = socket.channel("room:auth", {user: "somebody-else"})
    const presence = new Presence(channel)
    await joinOk(channel)
    await eventually("ann in presence", () => presenceKeys(presence).join() === "ann")
  })

  it("the authToken option works over websocket and longpoll", {timeout: 10000}, async () => {
    const ws = newSocket(server, {authToken: mint({user_id: "ws-user"})})
    await connect(ws)
    const lp = newSocket(server, {transport: LongPoll, authToken: mint({user_id: "lp-user"})})
    await connect(lp)
    const wsChannel = ws.channel("room:both")
    const presence = new Presence(wsChannel)
    await joinOk(wsChannel)
    await joinOk(lp.channel("room:both"))
    await eventually("both users in presence", () => presenceKeys(presence).join() === "lp-user,ws-user")
  })

  it("an expired, a forged or no token gets the connect error phoenix.js shows", {timeout: 20000}, async () => {
    const expired = mint({user_id: "ann"}, {signedAtMs: Date.now() - 3600 * 1000})
    const forged = mint({user_id: "ann"}, {secretKeyBase: "another app's secret_key_base, as long as the real one is, or more"})
    for(const params of [{token: expired}, {token: forged}, {}]){
      const message = await refusedConnect(newSocket(server, {params, reconnectAfterMs: () => 60000}))
      assert.match(message, /403/, `the ws client names the refusal: ${message}`)
    }
    const lpMessage = await refusedConnect(newSocket(server, {transport: LongPoll, params: {token: forged}, reconnectAfterMs: () => 60000}))
    assert.match(String(lpMessage), /403/, `the longpoll client names the refusal: ${lpMessage}`)
  })
})
