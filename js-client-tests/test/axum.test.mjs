// phoenix.js against examples/axum.rs: fawkes nested as a tower service in
// an axum application. The app's own routes answer (the authenticated one
// with 401 without the bearer token), phoenix.js joins a channel and gets a
// reply over websocket and over longpoll under /socket, and the app's
// graceful shutdown drains the sockets (1012) and exits cleanly.
import {describe, it, before} from "node:test"
import assert from "node:assert/strict"
import path from "node:path"
import {randomBytes} from "node:crypto"
import {LongPoll} from "phoenix"
import {startServer, binary, newSocket, connect, eventually, joinOk, pushed} from "./helpers.mjs"

const token = `t-${randomBytes(8).toString("hex")}`
let server
before(async () => {
  const bin = path.join(path.dirname(binary("x")), "examples", "axum")
  server = await startServer(bin, port => [String(port)], {label: "axum", env: {API_TOKEN: token}})
})

const get = (p, headers = {}) => fetch(`${server.httpUrl}${p}`, {headers})

describe("fawkes nested in axum", () => {
  it("the app's plain route answers", async () => {
    const res = await get("/hello")
    assert.equal(res.status, 200)
    assert.equal(await res.text(), "hello from axum")
  })

  it("the authenticated route answers 401 without the bearer token, 200 with it", async () => {
    assert.equal((await get("/api/me")).status, 401)
    assert.equal((await get("/api/me", {authorization: "Bearer wrong"})).status, 401)
    const res = await get("/api/me", {authorization: `Bearer ${token}`})
    assert.equal(res.status, 200)
    assert.deepEqual(await res.json(), {user: "api"})
  })

  it("unknown paths get 404 from axum and from the nested endpoint", async () => {
    assert.equal((await get("/nope")).status, 404)
    assert.equal((await get("/socket/nope")).status, 404)
  })

  for(const [name, transport] of [["websocket", undefined], ["longpoll", LongPoll]]){
    it(`phoenix.js joins and gets a reply over ${name}`, {timeout: 15000}, async () => {
      const opts = {params: {token, user: `ana-${name}`}}
      if(transport){ opts.transport = transport }
      const socket = newSocket(server, opts)
      await connect(socket)
      if(transport){ assert.equal(socket.transport, LongPoll) }
      const channel = socket.channel("room:lobby")
      await joinOk(channel)
      const reply = await pushed(channel, "ping", {body: `hi over ${name}`})
      assert.deepEqual(reply, {status: "ok", response: {pong: `hi over ${name}`, user: `ana-${name}`}})
      const bad = await pushed(channel, "ping", {nobody: 1})
      assert.equal(bad.status, "error", "a payload that does not fit is an error reply")
      socket.disconnect()
    })
  }

  it("a websocket without the token is refused by the connect callback", {timeout: 10000}, async () => {
    const socket = newSocket(server, {params: {token: "wrong", user: "eve"}})
    await assert.rejects(connect(socket), /socket error before open/)
    socket.disconnect()
  })

  it("the app's graceful shutdown drains the websocket (1012) and exits 0", {timeout: 20000}, async () => {
    const socket = newSocket(server, {params: {token, user: "last"}, reconnectAfterMs: () => 60000})
    const closes = []
    socket.onClose(e => { closes.push(e && e.code) })
    await connect(socket)
    await joinOk(socket.channel("room:lobby"))
    await server.stop("SIGINT")
    await eventually("the socket saw the drain", () => closes.length > 0)
    assert.equal(closes[0], 1012)
    assert.deepEqual(server.exited, {code: 0, signal: null})
    socket.disconnect()
  })
})
