// The phoenix.js Socket against the conformance app: heartbeats, refused
// connections, remote disconnects, and reconnect + rejoin after a restart.
import {describe, it, before} from "node:test"
import assert from "node:assert/strict"
import {
  startConformance, newSocket, connect, joinOk, pushed, eventually, httpBroadcast, sleep, within,
} from "./helpers.mjs"

let server
before(async () => { server = await startConformance() })

/** Counts the socket's open/close/error callbacks. */
function watch(socket){
  const seen = {opens: 0, closes: [], errors: []}
  socket.onOpen(() => { seen.opens++ })
  socket.onClose(e => { seen.closes.push(e && e.code) })
  socket.onError(e => { seen.errors.push(e && (e.message || e.type || e)) })
  return seen
}

describe("heartbeat", () => {
  it("socket.ping() gets the server's heartbeat reply", {timeout: 10000}, async () => {
    const socket = newSocket(server)
    await connect(socket)
    const rtt = await within(3000, "the ping reply", new Promise(resolve => {
      assert.equal(socket.ping(resolve), true)
    }))
    assert.equal(typeof rtt, "number")
    assert.ok(rtt >= 0 && rtt < 3000)
  })

  it("five heartbeats in a row are answered and the socket never times out", {timeout: 10000}, async () => {
    // phoenix.js closes a socket whose heartbeat is unanswered when the next
    // one is due ("heartbeat timeout"), so the interval is kept well above a
    // loaded machine's round trip
    const socket = newSocket(server, {heartbeatIntervalMs: 250})
    const seen = watch(socket)
    const replies = []
    socket.onMessage(msg => {
      if(msg.topic === "phoenix" && msg.event === "phx_reply"){ replies.push(msg.payload) }
    })
    await connect(socket)
    await eventually("five heartbeat replies", () => replies.length >= 5, 8000)
    assert.equal(seen.opens, 1, "no reconnect")
    assert.deepEqual(seen.closes, [])
    assert.deepEqual(seen.errors, [])
    for(const payload of replies){ assert.deepEqual(payload, {status: "ok", response: {}}) }
  })

  it("heartbeats keep a socket alive on a mount with a 1.5 s idle timeout", {timeout: 10000}, async () => {
    const socket = newSocket(server, {heartbeatIntervalMs: 300}, "/idle")
    const seen = watch(socket)
    let replies = 0
    socket.onMessage(msg => {
      if(msg.topic === "phoenix" && msg.event === "phx_reply"){ replies++ }
    })
    await connect(socket)
    // seven replies, each sent 300 ms after the last: longer than the idle timeout
    await eventually("seven heartbeat replies", () => replies >= 7, 8000)
    assert.equal(seen.opens, 1)
    assert.deepEqual(seen.closes, [])
  })

  it("without heartbeats that mount closes the socket with 1002 and phoenix.js reconnects", {timeout: 10000}, async () => {
    const socket = newSocket(server, {heartbeatIntervalMs: 30000}, "/idle")
    const seen = watch(socket)
    await connect(socket)
    await eventually("the idle close", () => seen.closes.length >= 1, 6000)
    // README/ARCHITECTURE: 1002 on idle timeout (as Phoenix on Bandit)
    assert.equal(seen.closes[0], 1002)
    await eventually("the reconnect", () => seen.opens >= 2, 3000)
  })
})

describe("refused and remote-closed connections", () => {
  it("a refused connect (token=bad) fires onError and never opens", {timeout: 10000}, async () => {
    const socket = newSocket(server, {params: {token: "bad"}, reconnectAfterMs: () => 200})
    const seen = watch(socket)
    socket.connect()
    await eventually("onError", () => seen.errors.length >= 1, 3000)
    await sleep(700)
    assert.equal(seen.opens, 0, "a refused socket must not open")
    assert.ok(!socket.isConnected())
    socket.disconnect()

    // any other token is accepted
    const ok = newSocket(server, {params: {token: "good", user_id: "t"}})
    await connect(ok)
  })

  it("a disconnect broadcast on the socket id closes that user's sockets; phoenix.js reconnects and rejoins", {timeout: 10000}, async () => {
    const alice = newSocket(server, {params: {user_id: "alice"}})
    const bob = newSocket(server, {params: {user_id: "bob"}})
    const seenAlice = watch(alice)
    const seenBob = watch(bob)
    await Promise.all([connect(alice), connect(bob)])
    const ca = alice.channel("room:remote")
    let aliceJoins = 0
    ca.join().receive("ok", () => { aliceJoins++ })
    await eventually("alice joined", () => aliceJoins === 1)

    assert.deepEqual(await httpBroadcast(server, "users_socket:alice", "disconnect", {}),
      {status: 200, body: {ok: true}})
    await eventually("alice's socket to be closed by the server", () => seenAlice.closes.length === 1, 3000)
    // README/ARCHITECTURE: a disconnect broadcast closes with 1001
    assert.equal(seenAlice.closes[0], 1001)
    await eventually("alice to reconnect", () => seenAlice.opens === 2, 3000)
    await eventually("alice's channel to rejoin", () => aliceJoins === 2, 3000)
    assert.deepEqual(await pushed(ca, "echo", {back: true}), {status: "ok", response: {back: true}})
    assert.deepEqual(seenBob.closes, [], "bob's socket is not affected")
    assert.equal(seenBob.opens, 1)
  })
})

describe("connecting", () => {
  it("the authToken option (a Sec-WebSocket-Protocol token) connects: the server selects the phoenix subprotocol", {timeout: 10000}, async () => {
    // ws, like the WHATWG spec allows browsers to, fails a handshake whose subprotocol answer is missing
    const socket = newSocket(server, {authToken: "s3cr3t-token", params: {user_id: "tok"}})
    await connect(socket)
    assert.equal(socket.conn.protocol, "phoenix")
    assert.deepEqual(await joinOk(socket.channel("room:token")), {topic: "room:token", user_id: "tok"})
  })

  it("disconnect() then connect() on the same Socket rejoins its channels", {timeout: 10000}, async () => {
    const socket = newSocket(server)
    const seen = watch(socket)
    await connect(socket)
    const channel = socket.channel("room:again")
    let joins = 0
    channel.join().receive("ok", () => { joins++ })
    await eventually("the join", () => joins === 1)
    await new Promise(resolve => socket.disconnect(resolve))
    assert.equal(socket.isConnected(), false)
    socket.connect()
    await eventually("the socket to open again", () => seen.opens === 2)
    await eventually("the rejoin", () => joins === 2)
    assert.deepEqual(await pushed(channel, "echo", {again: true}), {status: "ok", response: {again: true}})
  })

  it("a 1 MB payload round-trips", {timeout: 10000}, async () => {
    const socket = newSocket(server)
    await connect(socket)
    const channel = socket.channel("room:big")
    await joinOk(channel)
    const text = "fawkes ✓ ".repeat(110000)
    const {status, response} = await pushed(channel, "echo", {text})
    assert.equal(status, "ok")
    assert.equal(response.text.length, text.length)
    assert.equal(response.text, text)
  })
})

describe("server restart", () => {
  it("after the server restarts on the same port the socket reconnects and the channel rejoins", {timeout: 10000}, async () => {
    const own = await startConformance()
    const socket = newSocket(own, {params: {user_id: "phoenix"}})
    const seen = watch(socket)
    await connect(socket)
    const channel = socket.channel("room:restart")
    const joins = []
    channel.join().receive("ok", resp => joins.push({ref: channel.joinRef(), resp}))
    const errors = []
    channel.onError(reason => errors.push(reason))
    await eventually("the first join", () => joins.length === 1)
    assert.deepEqual(await pushed(channel, "echo", {before: 1}), {status: "ok", response: {before: 1}})

    await own.stop()
    await eventually("the socket to notice the server is gone", () => seen.closes.length >= 1, 3000)
    await eventually("the channel error", () => errors.length >= 1, 3000)
    assert.equal(channel.state, "errored")

    await startConformance({port: own.port})
    await eventually("the socket to reconnect", () => seen.opens >= 2, 5000)
    await eventually("the channel to rejoin", () => joins.length === 2, 5000)
    assert.notEqual(joins[1].ref, joins[0].ref, "the rejoin uses a new join ref")
    assert.deepEqual(joins[1].resp, {topic: "room:restart", user_id: "phoenix"})
    assert.deepEqual(await pushed(channel, "echo", {after: 2}), {status: "ok", response: {after: 2}})
  })
})
