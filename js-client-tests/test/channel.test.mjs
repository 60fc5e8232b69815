// Channels over the websocket transport against the conformance app
// (shared/conformance/APP.md): joins, replies, pushes, broadcasts, leave/close,
// crash and rejoin, binary payloads.
import {describe, it, before} from "node:test"
import assert from "node:assert/strict"
import {
  startConformance, newSocket, connect, joinOk, settle, pushed, nextEvent, collect,
  httpBroadcast, bytes, cast, sleep, within, eventually,
} from "./helpers.mjs"

let server
before(async () => { server = await startConformance() })

describe("joining", () => {
  it("connect params reach the server and the join replies ok with the channel's response", {timeout: 10000}, async () => {
    const socket = newSocket(server, {params: {user_id: "alice"}})
    await connect(socket)
    const channel = socket.channel("room:lobby", {})
    const welcome = nextEvent(channel, "welcome")
    const response = await joinOk(channel)
    assert.deepEqual(response, {topic: "room:lobby", user_id: "alice"})
    // the push made right after the join reply
    assert.deepEqual(await welcome, {topic: "room:lobby"})
    assert.equal(channel.state, "joined")
  })

  it("without params the socket is anonymous", {timeout: 10000}, async () => {
    const socket = newSocket(server)
    await connect(socket)
    assert.deepEqual(await joinOk(socket.channel("room:anon")), {topic: "room:anon", user_id: "anon"})
  })

  it("a join refused by the channel receives error with its reason", {timeout: 10000}, async () => {
    const socket = newSocket(server, {params: {user_id: "alice"}})
    await connect(socket)
    const rejected = socket.channel("room:nope", {reject: true})
    assert.deepEqual(await settle(rejected.join(), "join"), {status: "error", response: {reason: "rejected"}})
    assert.equal(rejected.state, "errored")
    rejected.leave()

    const priv = socket.channel("private:x")
    assert.deepEqual(await settle(priv.join(), "join"), {status: "error", response: {reason: "unauthorized"}})
    priv.leave()
  })

  it("a join that crashes receives error \"join crashed\"", {timeout: 10000}, async () => {
    const socket = newSocket(server)
    await connect(socket)
    const channel = socket.channel("room:boom", {crash: true})
    assert.deepEqual(await settle(channel.join(), "join"), {status: "error", response: {reason: "join crashed"}})
    channel.leave()
  })

  it("a join on an unmatched topic receives error \"unmatched topic\"", {timeout: 10000}, async () => {
    const socket = newSocket(server)
    await connect(socket)
    const channel = socket.channel("nowhere:1")
    assert.deepEqual(await settle(channel.join(), "join"), {status: "error", response: {reason: "unmatched topic"}})
    channel.leave()
  })

  it("pushes made before the join completes are buffered and sent once joined", {timeout: 10000}, async () => {
    const socket = newSocket(server)
    socket.connect()
    const channel = socket.channel("room:early")
    const joined = settle(channel.join(), "join")
    const echoed = pushed(channel, "echo", {early: true})
    assert.equal((await joined).status, "ok")
    assert.deepEqual(await echoed, {status: "ok", response: {early: true}})
  })
})

describe("replies", () => {
  let socket, channel
  before(async () => {
    socket = newSocket(server, {params: {user_id: "bob"}})
    await connect(socket)
    channel = socket.channel("room:replies")
    await joinOk(channel)
  })

  it("receive(\"ok\") gets the echoed payload", {timeout: 10000}, async () => {
    const payload = {text: "héllo ☃", n: 42, nested: {list: [1, null, true]}}
    assert.deepEqual(await pushed(channel, "echo", payload), {status: "ok", response: payload})
  })

  it("receive(\"ok\") with an empty response", {timeout: 10000}, async () => {
    assert.deepEqual(await pushed(channel, "ok_empty"), {status: "ok", response: {}})
  })

  it("receive(\"error\") gets the error response", {timeout: 10000}, async () => {
    assert.deepEqual(await pushed(channel, "error_reply"), {status: "error", response: {reason: "requested"}})
  })

  it("receive(\"timeout\") fires when the channel does not reply", {timeout: 10000}, async () => {
    assert.deepEqual(await pushed(channel, "noreply", {}, 300), {status: "timeout", response: undefined})
    // the channel is fine afterwards
    assert.deepEqual(await pushed(channel, "echo", {after: "noreply"}), {status: "ok", response: {after: "noreply"}})
  })

  it("a reply sent later from another process reaches the push", {timeout: 10000}, async () => {
    assert.deepEqual(await pushed(channel, "async_reply", {later: 1}), {status: "ok", response: {later: 1}})
  })

  it("replies are matched by ref: a slow channel does not hold up another channel's reply", {timeout: 10000}, async () => {
    const other = socket.channel("room:replies-other")
    await joinOk(other)
    const order = []
    const slow = pushed(channel, "slow", {ms: 400}).then(r => { order.push("slow"); return r })
    const fast = pushed(other, "echo", {fast: true}).then(r => { order.push("fast"); return r })
    assert.deepEqual(await fast, {status: "ok", response: {fast: true}})
    assert.deepEqual(await slow, {status: "ok", response: {slept: 400}})
    assert.deepEqual(order, ["fast", "slow"], "each channel handles its messages independently")
    // within one channel, messages are handled in order
    const first = pushed(channel, "slow", {ms: 200})
    const second = pushed(channel, "echo", {second: true})
    const inOrder = []
    await Promise.all([first.then(() => inOrder.push("first")), second.then(() => inOrder.push("second"))])
    assert.deepEqual(inOrder, ["first", "second"])
  })

  it("channel state persists between pushes (set/get)", {timeout: 10000}, async () => {
    assert.deepEqual(await pushed(channel, "get"), {status: "ok", response: {value: null}})
    assert.deepEqual(await pushed(channel, "set", {value: {a: [1, 2]}}), {status: "ok", response: {}})
    assert.deepEqual(await pushed(channel, "get"), {status: "ok", response: {value: {a: [1, 2]}}})
  })
})

describe("server pushes and broadcasts", () => {
  it("channel.on receives a push from the channel", {timeout: 10000}, async () => {
    const socket = newSocket(server)
    await connect(socket)
    const channel = socket.channel("room:push")
    await joinOk(channel)
    const got = nextEvent(channel, "pushed")
    cast(channel, "push_back", {hi: "there"})
    assert.deepEqual(await got, {hi: "there"})
  })

  it("broadcast reaches every subscriber including the sender; broadcast_from skips the sender", {timeout: 10000}, async () => {
    const a = newSocket(server, {params: {user_id: "a"}})
    const b = newSocket(server, {params: {user_id: "b"}})
    await Promise.all([connect(a), connect(b)])
    const ca = a.channel("room:bc")
    const cb = b.channel("room:bc")
    await Promise.all([joinOk(ca), joinOk(cb)])

    const toA = nextEvent(ca, "broadcast")
    const toB = nextEvent(cb, "broadcast")
    assert.deepEqual(await pushed(ca, "broadcast", {n: 1}), {status: "ok", response: {}})
    assert.deepEqual(await toA, {n: 1})
    assert.deepEqual(await toB, {n: 1})

    const seenByA = collect(ca, "broadcast_from")
    const toB2 = nextEvent(cb, "broadcast_from")
    assert.deepEqual(await pushed(ca, "broadcast_from", {n: 2}), {status: "ok", response: {}})
    assert.deepEqual(await toB2, {n: 2})
    await sleep(200)
    assert.deepEqual(seenByA, [], "the sender must not get its own broadcast_from")
  })

  it("intercepted broadcasts are filtered and rewritten per subscriber", {timeout: 10000}, async () => {
    const a = newSocket(server, {params: {user_id: "ann"}})
    const b = newSocket(server, {params: {user_id: "ben"}})
    await Promise.all([connect(a), connect(b)])
    const ca = a.channel("room:filter")
    const cb = b.channel("room:filter")
    await Promise.all([joinOk(ca), joinOk(cb)])
    const seenA = collect(ca, "filtered")
    const seenB = collect(cb, "filtered")
    cast(ca, "filtered", {drop: true, n: 1})
    cast(ca, "filtered", {n: 2})
    await eventually("both subscribers to see the kept broadcast", () => seenA.length >= 1 && seenB.length >= 1)
    await sleep(150)
    assert.deepEqual(seenA, [{n: 2, seen_by: "ann"}])
    assert.deepEqual(seenB, [{n: 2, seen_by: "ben"}])
  })

  it("POST /api/broadcast reaches channel.on on every subscribed socket", {timeout: 10000}, async () => {
    const a = newSocket(server)
    const b = newSocket(server)
    await Promise.all([connect(a), connect(b)])
    const ca = a.channel("room:http")
    const cb = b.channel("room:http")
    await Promise.all([joinOk(ca), joinOk(cb)])
    const toA = nextEvent(ca, "news")
    const toB = nextEvent(cb, "news")
    assert.deepEqual(await httpBroadcast(server, "room:http", "news", {headline: "fawkes"}),
      {status: 200, body: {ok: true}})
    assert.deepEqual(await toA, {headline: "fawkes"})
    assert.deepEqual(await toB, {headline: "fawkes"})
  })

  it("one socket multiplexes several topics", {timeout: 10000}, async () => {
    const socket = newSocket(server)
    await connect(socket)
    const one = socket.channel("room:one")
    const two = socket.channel("room:two")
    await Promise.all([joinOk(one), joinOk(two)])
    const seenOne = collect(one, "news")
    const toTwo = nextEvent(two, "news")
    await httpBroadcast(server, "room:two", "news", {to: "two"})
    assert.deepEqual(await toTwo, {to: "two"})
    assert.deepEqual(await pushed(one, "echo", {on: "one"}), {status: "ok", response: {on: "one"}})
    assert.deepEqual(seenOne, [])
  })
})

describe("leave and close", () => {
  it("leave() fires onClose, the server acknowledges, and the socket stops receiving the topic", {timeout: 10000}, async () => {
    const socket = newSocket(server)
    await connect(socket)
    const channel = socket.channel("room:leave")
    await joinOk(channel)
    const frames = []
    socket.onMessage(msg => { if(msg.topic === "room:leave"){ frames.push(msg) } })
    const closed = new Promise(resolve => channel.onClose(resolve))
    // phoenix.js settles leave() locally right away; the server's reply is checked on the wire below
    const leaveRef = channel.leave().ref
    await within(2000, "onClose", closed)
    assert.equal(channel.state, "closed")
    await eventually("the server's reply to phx_leave",
      () => frames.find(m => m.event === "phx_reply" && m.ref === leaveRef), 3000)
    assert.deepEqual(frames.find(m => m.ref === leaveRef).payload, {status: "ok", response: {}})

    await httpBroadcast(server, "room:leave", "news", {late: true})
    // a fresh channel on another topic proves the socket still works and the broadcast had time to arrive
    assert.deepEqual(await joinOk(socket.channel("room:after-leave")), {topic: "room:after-leave", user_id: "anon"})
    await sleep(100)
    assert.deepEqual(frames.filter(m => m.event === "news"), [], "no broadcast for a topic the socket left")
  })

  it("the same topic can be joined again after leaving", {timeout: 10000}, async () => {
    const socket = newSocket(server)
    await connect(socket)
    const first = socket.channel("room:again")
    await joinOk(first)
    await settle(first.leave(), "leave")
    const second = socket.channel("room:again")
    await joinOk(second)
    assert.deepEqual(await pushed(second, "echo", {x: 1}), {status: "ok", response: {x: 1}})
  })

  it("joining a topic already joined replaces the earlier channel", {timeout: 10000}, async () => {
    const socket = newSocket(server)
    await connect(socket)
    const first = socket.channel("room:dup")
    await joinOk(first)
    const firstClosed = new Promise(resolve => first.onClose(resolve))
    const second = socket.channel("room:dup")
    await joinOk(second)
    await within(2000, "the first channel to close", firstClosed)
    assert.deepEqual(await pushed(second, "echo", {dup: 2}), {status: "ok", response: {dup: 2}})
  })

  it("a channel stopped by the server ({:stop, ...}) fires onClose", {timeout: 10000}, async () => {
    const socket = newSocket(server)
    await connect(socket)
    const channel = socket.channel("room:stop")
    await joinOk(channel)
    const errors = []
    channel.onError(e => errors.push(e))
    const closed = new Promise(resolve => channel.onClose(resolve))
    cast(channel, "stop", {})
    await within(3000, "onClose after stop", closed)
    assert.equal(channel.state, "closed")
    assert.deepEqual(errors, [])
  })

  it("stop with a reply: the push gets its reply, then the channel closes", {timeout: 10000}, async () => {
    const socket = newSocket(server)
    await connect(socket)
    const channel = socket.channel("room:stop_reply")
    await joinOk(channel)
    const closed = new Promise(resolve => channel.onClose(resolve))
    assert.deepEqual(await pushed(channel, "stop_reply", {bye: true}), {status: "ok", response: {bye: true}})
    await within(3000, "onClose after stop_reply", closed)
  })
})

describe("crash and rejoin", () => {
  it("a crash fires onError, the channel rejoins with a new join ref, and works again", {timeout: 10000}, async () => {
    const socket = newSocket(server, {params: {user_id: "crashy"}})
    await connect(socket)
    const channel = socket.channel("room:crash")
    const joins = []
    channel.join().receive("ok", resp => joins.push({ref: channel.joinRef(), resp}))
    await eventually("the first join", () => joins.length === 1)
    const firstRef = channel.joinRef()

    const errored = new Promise(resolve => channel.onError(resolve))
    cast(channel, "crash", {})
    await within(3000, "onError after the crash", errored)

    await eventually("the automatic rejoin", () => joins.length === 2)
    assert.notEqual(joins[1].ref, firstRef, "a rejoin uses a new join ref")
    assert.deepEqual(joins[1].resp, {topic: "room:crash", user_id: "crashy"})
    assert.equal(channel.state, "joined")
    assert.deepEqual(await pushed(channel, "echo", {alive: true}), {status: "ok", response: {alive: true}})
  })

  it("an unknown event crashes only that channel; other channels of the socket keep their join", {timeout: 10000}, async () => {
    const socket = newSocket(server)
    await connect(socket)
    const victim = socket.channel("room:victim")
    const bystander = socket.channel("room:bystander")
    await Promise.all([joinOk(victim), joinOk(bystander)])
    const bystanderRef = bystander.joinRef()
    const bystanderErrors = []
    bystander.onError(e => bystanderErrors.push(e))
    const errored = new Promise(resolve => victim.onError(resolve))
    cast(victim, "no_such_event", {})
    await within(3000, "onError after the unknown event", errored)
    assert.deepEqual(await pushed(bystander, "echo", {still: "here"}), {status: "ok", response: {still: "here"}})
    assert.equal(bystander.joinRef(), bystanderRef)
    assert.deepEqual(bystanderErrors, [])
    assert.ok(socket.isConnected())
  })
})

describe("binary payloads", () => {
  let a, b, ca, cb
  before(async () => {
    a = newSocket(server)
    b = newSocket(server)
    await Promise.all([connect(a), connect(b)])
    ca = a.channel("room:bin")
    cb = b.channel("room:bin")
    await Promise.all([joinOk(ca), joinOk(cb)])
  })

  const sample = () => {
    const data = new Uint8Array(300)
    for(let i = 0; i < data.length; i++){ data[i] = (i * 7 + 3) % 256 }
    data[0] = 0; data[1] = 255
    return data
  }

  it("an ArrayBuffer push is replied with an ArrayBuffer of the same bytes", {timeout: 10000}, async () => {
    const data = sample()
    const {status, response} = await pushed(ca, "binary_echo", data.buffer)
    assert.equal(status, "ok")
    assert.ok(response instanceof ArrayBuffer, `reply is ${response && response.constructor.name}, not ArrayBuffer`)
    assert.deepEqual(bytes(response), Array.from(data))
  })

  it("an empty ArrayBuffer round-trips", {timeout: 10000}, async () => {
    const {status, response} = await pushed(ca, "binary_echo", new ArrayBuffer(0))
    assert.equal(status, "ok")
    assert.ok(response instanceof ArrayBuffer)
    assert.equal(response.byteLength, 0)
  })

  it("a binary push reaches channel.on as an ArrayBuffer", {timeout: 10000}, async () => {
    const data = sample().reverse()
    const got = nextEvent(ca, "binary_pushed")
    cast(ca, "binary_push", data.buffer)
    const payload = await got
    assert.ok(payload instanceof ArrayBuffer)
    assert.deepEqual(bytes(payload), Array.from(data))
  })

  it("a binary broadcast reaches every subscriber as an ArrayBuffer", {timeout: 10000}, async () => {
    const data = new Uint8Array([1, 2, 3, 0, 254])
    const toA = nextEvent(ca, "binary_broadcast")
    const toB = nextEvent(cb, "binary_broadcast")
    cast(ca, "binary_broadcast", data.buffer)
    for(const payload of [await toA, await toB]){
      assert.ok(payload instanceof ArrayBuffer)
      assert.deepEqual(bytes(payload), [1, 2, 3, 0, 254])
    }
  })
})
