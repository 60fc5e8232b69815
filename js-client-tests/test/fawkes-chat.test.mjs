// The `fawkes serve` chat application from Node, as the chat page uses it:
// room:* joins with presence (batched presence_diff), relayed new_msg/typing.
import {describe, it, before} from "node:test"
import assert from "node:assert/strict"
import {LongPoll, Presence} from "phoenix"
import {
  startFawkes, ensureChatDeps, newSocket, connect, joinOk, pushed, nextEvent, collect, eventually,
  presenceKeys, sleep,
} from "./helpers.mjs"

// phoenix.js for the chat page (/vendor/phoenix.mjs), installed once before any timed hook
ensureChatDeps()

let server
before(async () => { server = await startFawkes() })

/** Records the payload of every presence_diff on `topic` that `socket` receives. */
function diffFrames(socket, topic){
  const frames = []
  socket.onMessage(({topic: t, event, payload}) => {
    if(t === topic && event === "presence_diff"){ frames.push(payload) }
  })
  return frames
}

async function chatter({user, joinUser, topic = "room:lobby", transport} = {}){
  const socket = newSocket(server, {params: user ? {user} : {}, ...(transport ? {transport} : {})})
  await connect(socket)
  const channel = socket.channel(topic, joinUser ? {user: joinUser} : {})
  const presence = new Presence(channel)
  const response = await joinOk(channel)
  return {socket, channel, presence, response}
}

describe("fawkes serve: chat rooms", () => {
  it("a join replies ok with an empty response and the user appears in presence with online_at", {timeout: 10000}, async () => {
    const before = Date.now()
    const alice = await chatter({user: "alice", topic: "room:meta"})
    assert.deepEqual(alice.response, {})
    await eventually("alice in her own presence list", () => presenceKeys(alice.presence).join() === "alice")
    const [meta] = alice.presence.list((id, {metas}) => metas)[0]
    assert.equal(typeof meta.online_at, "number")
    assert.ok(meta.online_at >= before - 5000 && meta.online_at <= Date.now() + 5000, `online_at ${meta.online_at}`)
    assert.equal(typeof meta.phx_ref, "string")
  })

  it("the presence key is the join param user, else the connect param user, else anonymous", {timeout: 10000}, async () => {
    const topic = "room:keys"
    const watcher = await chatter({user: "watcher", topic})
    await chatter({user: "conn-name", joinUser: "join-name", topic})
    await chatter({user: "only-conn", topic})
    await chatter({topic})
    await eventually("all four keys", () =>
      presenceKeys(watcher.presence).join() === "anonymous,join-name,only-conn,watcher")
  })

  it("new_msg and typing are relayed to everyone else, not back to the sender", {timeout: 10000}, async () => {
    const topic = "room:relay"
    const alice = await chatter({user: "alice", topic})
    const bob = await chatter({user: "bob", topic})
    const carol = await chatter({user: "carol", topic})
    const aliceOwn = collect(alice.channel, "new_msg")
    const aliceTyping = collect(alice.channel, "typing")

    const toBob = nextEvent(bob.channel, "typing")
    const toCarol = nextEvent(carol.channel, "typing")
    assert.deepEqual(await pushed(alice.channel, "typing", {user: "alice"}), {status: "ok", response: {}})
    assert.deepEqual(await toBob, {user: "alice"})
    assert.deepEqual(await toCarol, {user: "alice"})

    const msg = {body: "hello ☃ <script>", user: "alice"}
    const bobMsg = nextEvent(bob.channel, "new_msg")
    const carolMsg = nextEvent(carol.channel, "new_msg")
    assert.deepEqual(await pushed(alice.channel, "new_msg", msg), {status: "ok", response: {}})
    assert.deepEqual(await bobMsg, msg)
    assert.deepEqual(await carolMsg, msg)

    const back = nextEvent(alice.channel, "new_msg")
    await pushed(bob.channel, "new_msg", {body: "hi", user: "bob"})
    assert.deepEqual(await back, {body: "hi", user: "bob"})
    await sleep(150)
    assert.deepEqual(aliceOwn, [{body: "hi", user: "bob"}], "alice never gets her own message back")
    assert.deepEqual(aliceTyping, [], "alice never gets her own typing event back")
  })

  it("messages stay in their room", {timeout: 10000}, async () => {
    const a = await chatter({user: "a", topic: "room:one"})
    const b = await chatter({user: "b", topic: "room:two"})
    const c = await chatter({user: "c", topic: "room:one"})
    const seenByB = collect(b.channel, "new_msg")
    const toC = nextEvent(c.channel, "new_msg")
    await pushed(a.channel, "new_msg", {body: "one only", user: "a"})
    assert.deepEqual(await toC, {body: "one only", user: "a"})
    await sleep(100)
    assert.deepEqual(seenByB, [])
  })

  it("other events get an error reply and the channel keeps working", {timeout: 10000}, async () => {
    const alice = await chatter({user: "alice", topic: "room:errors"})
    const {status} = await pushed(alice.channel, "delete_everything", {})
    assert.equal(status, "error")
    assert.equal(alice.channel.state, "joined")
    assert.deepEqual(await pushed(alice.channel, "typing", {user: "alice"}), {status: "ok", response: {}})
  })

  it("a burst of joins reaches a watcher in fewer presence_diff frames than joins, and every list converges (batched diffs)", {timeout: 10000}, async () => {
    const topic = "room:churn"
    const watcher = await chatter({user: "watcher", topic})
    const diffs = diffFrames(watcher.socket, topic)
    const users = ["u1", "u2", "u3", "u4", "u5", "u6"]
    // connected first, then all six joins sent in one tick: one burst
    const sockets = users.map(user => newSocket(server, {params: {user}}))
    await Promise.all(sockets.map(socket => connect(socket)))
    const crowd = sockets.map(socket => {
      const channel = socket.channel(topic)
      return {socket, channel, presence: new Presence(channel)}
    })
    await Promise.all(crowd.map(({channel}) => joinOk(channel)))
    await eventually("the watcher to list the crowd", () => presenceKeys(watcher.presence).join() === [...users, "watcher"].join())
    // The window merges diffs: without it each join is a frame of its own.
    // (Six joins sent at once land in one or two 100 ms windows; all six in
    // separate windows would take the server over half a second.)
    const joinFrames = diffs.filter(d => users.some(u => u in d.joins))
    const joined = joinFrames.flatMap(d => Object.keys(d.joins).filter(k => users.includes(k)))
    assert.deepEqual(joined.sort(), users, "every join is in exactly one diff")
    assert.ok(joinFrames.length < users.length, `${users.length} joins in ${joinFrames.length} presence_diff frames`)

    crowd[1].channel.leave()
    crowd[3].socket.disconnect()
    await pushed(crowd[5].channel, "typing", {user: "u6"})
    const expected = "u1,u3,u5,u6,watcher"
    await eventually("the watcher's list", () => presenceKeys(watcher.presence).join() === expected)
    for(const member of [crowd[0], crowd[2], crowd[4], crowd[5]]){
      await eventually("every remaining member's list", () => presenceKeys(member.presence).join() === expected)
    }
    const left = diffs.flatMap(d => Object.keys(d.leaves))
    assert.deepEqual(left.sort(), ["u2", "u4"], "each leave is in exactly one diff")
    // each key has exactly one meta
    for(const [id, n] of watcher.presence.list((id, {metas}) => [id, metas.length])){ assert.equal(n, 1, id) }
  })

  it("a presence that joins and leaves within the diff batch window in which another client joined is removed for that client", {timeout: 20000}, async () => {
    // a is tracked, b joins and gets its presence_state (listing a), and a
    // leaves, all within one 100 ms window: the window's merged diff carries
    // b's join and a's leave together (without a window they are separate
    // frames), and b must still see a leave. Three rounds, as a round can
    // straddle two windows.
    const merged = []
    for(let round = 0; round < 3; round++){
      const topic = `room:window-${round}`
      const [aSocket, bSocket] = [newSocket(server, {params: {user: "a"}}), newSocket(server, {params: {user: "b"}})]
      await Promise.all([connect(aSocket), connect(bSocket)])
      const bDiffs = diffFrames(bSocket, topic)
      const aChannel = aSocket.channel(topic)
      const bChannel = bSocket.channel(topic)
      const bPresence = new Presence(bChannel)
      let sawA = false
      bPresence.onSync(() => {
        if(!sawA && presenceKeys(bPresence).includes("a")){
          sawA = true
          aChannel.leave()
        }
      })
      await new Promise(resolve => { aChannel.join().receive("ok", () => resolve(joinOk(bChannel))) })
      await eventually("b to see a in its presence_state", () => sawA)
      await eventually(`b to see a leave (round ${round})`, () => presenceKeys(bPresence).join() === "b", 5000)
      const aLeaves = bDiffs.filter(d => "a" in d.leaves)
      assert.equal(aLeaves.length, 1, `round ${round}: a's leave in exactly one diff`)
      merged.push(aLeaves.some(d => "b" in d.joins))
    }
    assert.ok(merged.some(Boolean), `no round merged b's join with a's leave: ${JSON.stringify(merged)}`)
  })

  it("leaving and rejoining within one diff batch window leaves exactly one presence, in fewer diff frames than changes", {timeout: 10000}, async () => {
    const topic = "room:flap"
    const watcher = await chatter({user: "watcher", topic})
    const flapper = await chatter({user: "flap", topic})
    await eventually("the watcher to see flap", () => presenceKeys(watcher.presence).join() === "flap,watcher")
    const diffs = diffFrames(watcher.socket, topic)
    for(let i = 0; i < 3; i++){
      flapper.channel.leave()
      flapper.channel = flapper.socket.channel(topic)
      flapper.presence = new Presence(flapper.channel)
      await joinOk(flapper.channel)
    }
    // settled: the watcher lists exactly the meta the flapper's last join tracked
    const lastRef = await eventually("the flapper's own meta", () => {
      const own = flapper.presence.list((id, {metas}) => id === "flap" && metas.length === 1 && metas[0].phx_ref).find(Boolean)
      return own
    })
    await eventually("the watcher to list flap's last meta only", () => {
      const metas = watcher.presence.list((id, {metas}) => [id, metas.map(m => m.phx_ref)])
      return JSON.stringify(metas.sort()) === JSON.stringify([["flap", [lastRef]], ["watcher", metas.find(([id]) => id === "watcher")[1]]])
    })
    const metas = watcher.presence.list((id, {metas}) => [id, metas.length])
    assert.deepEqual(metas.sort(), [["flap", 1], ["watcher", 1]])
    // three leaves and three joins; one diff frame each without the window
    const flapFrames = diffs.filter(d => "flap" in d.joins || "flap" in d.leaves)
    assert.ok(flapFrames.length < 6, `6 changes in ${flapFrames.length} presence_diff frames`)
  })

  it("the same user from a LongPoll client is seen by websocket clients", {timeout: 10000}, async () => {
    const topic = "room:lp"
    const ws = await chatter({user: "ws-user", topic})
    const lp = await chatter({user: "lp-user", topic, transport: LongPoll})
    await eventually("the websocket client to see the LongPoll client", () =>
      presenceKeys(ws.presence).join() === "lp-user,ws-user")
    const toWs = nextEvent(ws.channel, "new_msg")
    assert.deepEqual(await pushed(lp.channel, "new_msg", {body: "over longpoll", user: "lp-user"}), {status: "ok", response: {}})
    assert.deepEqual(await toWs, {body: "over longpoll", user: "lp-user"})
    const toLp = nextEvent(lp.channel, "new_msg")
    await pushed(ws.channel, "new_msg", {body: "over websocket", user: "ws-user"})
    assert.deepEqual(await toLp, {body: "over websocket", user: "ws-user"})
  })

  it("after a restart on the same port both clients reconnect and their presence lists converge", {timeout: 10000}, async () => {
    const own = await startFawkes()
    const topic = "room:restart"
    const member = async user => {
      const socket = newSocket(own, {params: {user}})
      await connect(socket)
      const channel = socket.channel(topic)
      const presence = new Presence(channel)
      let joins = 0
      channel.join().receive("ok", () => { joins++ })
      await eventually(`${user} joined`, () => joins === 1)
      return {socket, channel, presence, joins: () => joins}
    }
    const alice = await member("alice")
    const bob = await member("bob")
    await eventually("alice sees bob", () => presenceKeys(alice.presence).join() === "alice,bob")
    const before = alice.presence.list((id, {metas}) => metas[0].phx_ref)

    await own.stop()
    await startFawkes({port: own.port})
    await eventually("both rejoin", () => alice.joins() === 2 && bob.joins() === 2, 6000)
    for(const m of [alice, bob]){
      await eventually("one fresh meta per user", () => {
        const metas = m.presence.list((id, {metas}) => [id, metas.length, metas[0].phx_ref])
        return metas.length === 2 && metas.every(([, n, ref]) => n === 1 && !before.includes(ref))
      }, 3000)
    }
    const toBob = nextEvent(bob.channel, "new_msg")
    await pushed(alice.channel, "new_msg", {body: "back", user: "alice"})
    assert.deepEqual(await toBob, {body: "back", user: "alice"})
  })

  it("SIGTERM: a waiting LongPoll poll is answered, LongPoll clients notice, and the server exits with status 0", {timeout: 20000}, async () => {
    const own = await startFawkes()
    const lp = newSocket(own, {params: {user: "lp"}, transport: LongPoll, reconnectAfterMs: () => 60000})
    const lpErrors = []
    lp.onError(e => lpErrors.push(e))
    await connect(lp)
    await joinOk(lp.channel("room:term"))

    // A LongPoll poll known to be waiting on the server: of two polls on one
    // session the later one answers the earlier with 204 at once, so once
    // one of them answered, the other is registered and waiting.
    const lpUrl = `${own.httpUrl}/socket/longpoll?vsn=2.0.0&user=raw`
    const getJson = async url => {
      const res = await fetch(url, {headers: {accept: "application/json"}, signal: AbortSignal.timeout(15000)})
      return {http: res.status, body: JSON.parse(await res.text())}
    }
    const opened = await getJson(lpUrl)
    assert.equal(opened.body.status, 410)
    const pollUrl = `${lpUrl}&token=${encodeURIComponent(opened.body.token)}`
    const polls = [getJson(pollUrl), getJson(pollUrl)]
    const first = await Promise.race(polls.map((p, i) => p.then(answer => ({i, answer}))))
    assert.deepEqual(first.answer, {http: 200, body: {status: 204, token: opened.body.token, messages: []}})
    const waiting = polls[1 - first.i].then(answer => answer, error => ({error: String(error.cause?.code || error.message)}))

    own.child.kill("SIGTERM")
    // generous bound: it only turns a hang into a failure
    await eventually("the server to exit after SIGTERM", () => own.exited, 15000)
    assert.equal(own.exited.code, 0, `exit status ${JSON.stringify(own.exited)}`)
    // The waiting poll was answered before the server went away (a dropped
    // or refused connection is an error here), and it ends the poll.
    const answer = await waiting
    assert.equal(answer.http, 200, `the waiting poll got ${JSON.stringify(answer)}`)
    assert.ok([204, 410].includes(answer.body.status), `the waiting poll got ${JSON.stringify(answer)}`)
    // phoenix.js's own LongPoll client notices the server is gone.
    await eventually("the LongPoll client to see its session end", () => lpErrors.length >= 1, 5000)
  })

  // README: "every websocket gets a 1012 close frame before the process exits".
  it("SIGTERM: websocket clients are closed with 1012", {timeout: 20000}, async () => {
    const own = await startFawkes()
    const ws = newSocket(own, {params: {user: "ws"}, reconnectAfterMs: () => 60000})
    const wsCloses = []
    ws.onClose(e => wsCloses.push(e.code))
    await connect(ws)
    await joinOk(ws.channel("room:term"))
    own.child.kill("SIGTERM")
    await eventually("the server to exit after SIGTERM", () => own.exited, 15000)
    assert.equal(own.exited.code, 0, `exit status ${JSON.stringify(own.exited)}`)
    await eventually("the websocket client to see the close", () => wsCloses.length >= 1, 5000)
    // README: "websockets close with 1012 so phoenix.js reconnects"
    assert.equal(wsCloses[0], 1012, `close codes ${JSON.stringify(wsCloses)}`)
  })
})
