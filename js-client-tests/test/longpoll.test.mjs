// The LongPoll transport of phoenix.js (`transport: LongPoll`) against the
// conformance app's /socket/longpoll, and the automatic fallback from a
// websocket that cannot connect (`longPollFallbackMs`).
import {describe, it, before} from "node:test"
import assert from "node:assert/strict"
import {LongPoll, Presence} from "phoenix"
import {
  startConformance, newSocket, connect, joinOk, settle, pushed, nextEvent, collect, cast,
  httpBroadcast, eventually, presenceKeys, sleep,
} from "./helpers.mjs"

let server
before(async () => { server = await startConformance() })

const lpSocket = (opts = {}) => newSocket(server, {transport: LongPoll, ...opts})

describe("LongPoll transport", () => {
  it("connects with params, joins, and gets the welcome push", {timeout: 10000}, async () => {
    const socket = lpSocket({params: {user_id: "carol"}})
    await connect(socket)
    assert.equal(socket.transport, LongPoll)
    const channel = socket.channel("room:lp")
    const welcome = nextEvent(channel, "welcome")
    assert.deepEqual(await joinOk(channel), {topic: "room:lp", user_id: "carol"})
    assert.deepEqual(await welcome, {topic: "room:lp"})
  })

  it("push replies: ok, error, timeout, and a push from the channel", {timeout: 10000}, async () => {
    const socket = lpSocket()
    await connect(socket)
    const channel = socket.channel("room:lp-replies")
    await joinOk(channel)
    assert.deepEqual(await pushed(channel, "echo", {lp: true, text: "ünï"}), {status: "ok", response: {lp: true, text: "ünï"}})
    assert.deepEqual(await pushed(channel, "error_reply"), {status: "error", response: {reason: "requested"}})
    assert.deepEqual(await pushed(channel, "noreply", {}, 300), {status: "timeout", response: undefined})
    assert.deepEqual(await pushed(channel, "async_reply", {later: true}), {status: "ok", response: {later: true}})
    const got = nextEvent(channel, "pushed")
    cast(channel, "push_back", {via: "longpoll"})
    assert.deepEqual(await got, {via: "longpoll"})
  })

  it("a burst of pushes is batched by the client and every reply arrives", {timeout: 10000}, async () => {
    const socket = lpSocket()
    await connect(socket)
    const channel = socket.channel("room:lp-burst")
    await joinOk(channel)
    const replies = await Promise.all(Array.from({length: 30}, (_, i) => pushed(channel, "echo", {i})))
    assert.deepEqual(replies.map(r => r.response.i), Array.from({length: 30}, (_, i) => i))
    assert.ok(replies.every(r => r.status === "ok"))
  })

  it("broadcasts flow between LongPoll and WebSocket clients, and from POST /api/broadcast", {timeout: 10000}, async () => {
    const lp = lpSocket({params: {user_id: "lp"}})
    const ws = newSocket(server, {params: {user_id: "ws"}})
    await Promise.all([connect(lp), connect(ws)])
    const clp = lp.channel("room:mixed")
    const cws = ws.channel("room:mixed")
    await Promise.all([joinOk(clp), joinOk(cws)])

    let toWs = nextEvent(cws, "broadcast")
    let toLp = nextEvent(clp, "broadcast")
    assert.deepEqual(await pushed(clp, "broadcast", {from: "lp"}), {status: "ok", response: {}})
    assert.deepEqual(await toWs, {from: "lp"})
    assert.deepEqual(await toLp, {from: "lp"})

    const lpSeesOwn = collect(clp, "broadcast_from")
    const wsGets = nextEvent(cws, "broadcast_from")
    assert.deepEqual(await pushed(clp, "broadcast_from", {from: "lp"}), {status: "ok", response: {}})
    assert.deepEqual(await wsGets, {from: "lp"})
    await sleep(200)
    assert.deepEqual(lpSeesOwn, [], "broadcast_from skips the LongPoll sender")

    toLp = nextEvent(clp, "broadcast_from")
    await pushed(cws, "broadcast_from", {from: "ws"})
    assert.deepEqual(await toLp, {from: "ws"})

    toLp = nextEvent(clp, "news")
    toWs = nextEvent(cws, "news")
    assert.equal((await httpBroadcast(server, "room:mixed", "news", {n: 1})).status, 200)
    assert.deepEqual(await toLp, {n: 1})
    assert.deepEqual(await toWs, {n: 1})
  })

  it("presence: LongPoll clients see joins, updates and leaves", {timeout: 10000}, async () => {
    const topic = "presence:lp"
    const make = async (user, transport) => {
      const socket = transport === "lp" ? lpSocket({params: {user_id: user}}) : newSocket(server, {params: {user_id: user}})
      await connect(socket)
      const channel = socket.channel(topic)
      const presence = new Presence(channel)
      await joinOk(channel)
      return {socket, channel, presence}
    }
    const alice = await make("alice", "lp")
    const bob = await make("bob", "ws")
    const carol = await make("carol", "lp")
    for(const m of [alice, bob, carol]){
      await eventually("everyone to list alice, bob and carol", () => presenceKeys(m.presence).join() === "alice,bob,carol")
    }
    await pushed(carol.channel, "update_status", {status: "busy"})
    await eventually("alice to see carol busy", () =>
      alice.presence.list((k, p) => k === "carol" && p.metas.length === 1 && p.metas[0].status === "busy").some(Boolean))
    carol.channel.leave()
    await eventually("alice (LongPoll) to see carol leave", () => presenceKeys(alice.presence).join() === "alice,bob")
    await eventually("bob (WebSocket) to see carol leave", () => presenceKeys(bob.presence).join() === "alice,bob")
  })

  it("a crash fires onError and the channel rejoins over LongPoll", {timeout: 10000}, async () => {
    const socket = lpSocket()
    await connect(socket)
    const channel = socket.channel("room:lp-crash")
    let joins = 0
    channel.join().receive("ok", () => { joins++ })
    await eventually("the join", () => joins === 1)
    const errored = new Promise(resolve => channel.onError(resolve))
    cast(channel, "crash")
    await errored
    await eventually("the rejoin", () => joins === 2, 5000)
    assert.deepEqual(await pushed(channel, "echo", {again: true}), {status: "ok", response: {again: true}})
  })

  it("the authToken option (X-Phoenix-AuthToken header) connects", {timeout: 10000}, async () => {
    const socket = lpSocket({authToken: "s3cr3t-token", params: {user_id: "tok"}})
    await connect(socket)
    assert.deepEqual(await joinOk(socket.channel("room:lp-token")), {topic: "room:lp-token", user_id: "tok"})
  })

  it("a refused connect (token=bad) fires onError and never opens", {timeout: 10000}, async () => {
    const socket = lpSocket({params: {token: "bad"}, reconnectAfterMs: () => 200})
    let opens = 0
    const errors = []
    socket.onOpen(() => { opens++ })
    socket.onError(e => errors.push(e))
    socket.connect()
    await eventually("onError", () => errors.length >= 1, 3000)
    assert.equal(errors[0], 403)
    await sleep(500)
    assert.equal(opens, 0)
    socket.disconnect()
  })

  it("after the server restarts on the same port the LongPoll socket reconnects and rejoins", {timeout: 10000}, async () => {
    const own = await startConformance()
    const socket = newSocket(own, {transport: LongPoll, params: {user_id: "lp-restart"}})
    await connect(socket)
    const channel = socket.channel("room:lp-restart")
    let joins = 0
    channel.join().receive("ok", () => { joins++ })
    await eventually("the join", () => joins === 1)
    await own.stop()
    await eventually("the channel to error", () => channel.state === "errored", 5000)
    await startConformance({port: own.port})
    await eventually("the rejoin", () => joins === 2, 6000)
    assert.deepEqual(await pushed(channel, "echo", {after: "restart"}), {status: "ok", response: {after: "restart"}})
  })
})

// WebSocket stand-ins for a network where websockets are blocked.

/** Fails like a websocket whose upgrade is refused by a proxy: error, then close 1006. */
class RefusedWebSocket {
  constructor(url){
    this.url = url
    this.readyState = 0
    this.binaryType = "arraybuffer"
    this.onopen = this.onerror = this.onclose = this.onmessage = () => {}
    RefusedWebSocket.attempts.push(url)
    setTimeout(() => {
      if(this.readyState === 3){ return }
      this.readyState = 3
      this.onerror({type: "error", message: "websocket blocked"})
      this.onclose({code: 1006, reason: "", wasClean: false})
    }, 20)
  }
  send(){ throw new Error("not open") }
  close(){ this.readyState = 3 }
}
RefusedWebSocket.attempts = []

/** Never connects nor fails, like a websocket swallowed by a proxy. */
class HangingWebSocket {
  constructor(url){
    this.url = url
    this.readyState = 0
    this.binaryType = "arraybuffer"
    this.onopen = this.onerror = this.onclose = this.onmessage = () => {}
    HangingWebSocket.attempts.push(url)
  }
  send(){ throw new Error("not open") }
  close(){ this.readyState = 3 }
}
HangingWebSocket.attempts = []

describe("LongPoll fallback (longPollFallbackMs)", () => {
  it("falls back to LongPoll when the websocket errors, then joins and pushes", {timeout: 10000}, async () => {
    const socket = newSocket(server, {transport: RefusedWebSocket, longPollFallbackMs: 2000, params: {user_id: "fb"}})
    socket.connect()
    await eventually("the socket to be open over LongPoll", () => socket.isConnected() && socket.transport === LongPoll, 5000)
    assert.ok(RefusedWebSocket.attempts.length >= 1, "the websocket was tried first")
    assert.match(RefusedWebSocket.attempts[0], /\/socket\/websocket\?/)
    const channel = socket.channel("room:fallback")
    assert.deepEqual(await joinOk(channel), {topic: "room:fallback", user_id: "fb"})
    assert.deepEqual(await pushed(channel, "echo", {fell: "back"}), {status: "ok", response: {fell: "back"}})
  })

  it("falls back to LongPoll when the websocket hangs past longPollFallbackMs", {timeout: 10000}, async () => {
    const socket = newSocket(server, {transport: HangingWebSocket, longPollFallbackMs: 300, params: {user_id: "hang"}})
    const channel = socket.channel("room:fallback-hang")
    const joined = settle(channel.join(), "join", 6000)
    socket.connect()
    assert.equal((await joined).status, "ok")
    assert.equal(socket.transport, LongPoll)
    assert.equal(HangingWebSocket.attempts.length, 1)
    assert.deepEqual(await pushed(channel, "echo", {hung: true}), {status: "ok", response: {hung: true}})
  })
})
