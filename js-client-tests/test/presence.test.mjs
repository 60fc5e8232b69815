// phoenix.js Presence (presence_state + presence_diff) against the conformance
// app's PresenceChannel: joins, updates, leaves, untrack, disconnects.
import {describe, it, before} from "node:test"
import assert from "node:assert/strict"
import {Presence} from "phoenix"
import {
  startConformance, newSocket, connect, joinOk, pushed, eventually, presenceKeys, sleep,
} from "./helpers.mjs"

let server
before(async () => { server = await startConformance() })

/** A socket for `user`, joined to `topic`, with a Presence recording its callbacks. */
async function member(user, topic, joinParams = {}){
  const socket = newSocket(server, {params: {user_id: user}})
  await connect(socket)
  const channel = socket.channel(topic, joinParams)
  const presence = new Presence(channel)
  const events = []
  let syncs = 0
  presence.onJoin((key, current, newPres) => events.push(["join", key, !!current, newPres.metas.map(m => m.status)]))
  presence.onLeave((key, current, leftPres) => events.push(["leave", key, current.metas.length, leftPres.metas.map(m => m.status)]))
  presence.onSync(() => { syncs++ })
  await joinOk(channel)
  return {user, socket, channel, presence, events, syncs: () => syncs}
}

const metasOf = (presence, key) => {
  const found = presence.list((k, p) => [k, p]).find(([k]) => k === key)
  return found ? found[1].metas.map(({phx_ref, phx_ref_prev, ...rest}) => {
    assert.equal(typeof phx_ref, "string", "every meta carries a phx_ref")
    return rest
  }) : undefined
}

describe("presence", () => {
  it("three clients: onSync/onJoin/onLeave follow joins, an update and a leave", {timeout: 10000}, async () => {
    const topic = "presence:x"
    const alice = await member("alice", topic)
    await eventually("alice to see herself", () => presenceKeys(alice.presence).join() === "alice")
    assert.ok(alice.syncs() >= 1, "onSync fired")
    assert.deepEqual(metasOf(alice.presence, "alice"), [{name: "alice", status: "online"}])

    const bob = await member("bob", topic)
    const carol = await member("carol", topic, {name: "Carol C."})
    for(const m of [alice, bob, carol]){
      await eventually(`${m.user} to list all three`,
        () => presenceKeys(m.presence).join() === "alice,bob,carol")
    }
    assert.deepEqual(metasOf(alice.presence, "carol"), [{name: "Carol C.", status: "online"}])
    assert.deepEqual(alice.events.filter(([kind, key]) => kind === "join" && key !== "alice"), [
      ["join", "bob", false, ["online"]],
      ["join", "carol", false, ["online"]],
    ])

    // bob changes his status: one meta, updated in place for everyone
    assert.deepEqual(await pushed(bob.channel, "update_status", {status: "away"}), {status: "ok", response: {}})
    for(const m of [alice, bob, carol]){
      await eventually(`${m.user} to see bob away`,
        () => JSON.stringify(metasOf(m.presence, "bob")) === JSON.stringify([{name: "bob", status: "away"}]))
    }
    assert.ok(alice.events.some(e => JSON.stringify(e) === JSON.stringify(["join", "bob", true, ["away"]])),
      `onJoin for bob's update with his current presence: ${JSON.stringify(alice.events)}`)
    // phoenix.js reports the replaced meta through onLeave, with bob still present
    assert.ok(!alice.events.some(([kind, key, remaining]) => kind === "leave" && key === "bob" && remaining === 0),
      `an update must not make bob leave: ${JSON.stringify(alice.events)}`)
    assert.deepEqual(presenceKeys(alice.presence), ["alice", "bob", "carol"])

    // carol leaves the channel
    carol.channel.leave()
    for(const m of [alice, bob]){
      await eventually(`${m.user} to see carol leave`, () => presenceKeys(m.presence).join() === "alice,bob")
    }
    assert.deepEqual(alice.events.filter(([kind, , remaining]) => kind === "leave" && remaining === 0),
      [["leave", "carol", 0, ["online"]]])

    // the server's own list agrees
    const {status, response} = await pushed(alice.channel, "list")
    assert.equal(status, "ok")
    assert.deepEqual(Presence.list(response, id => id).sort(), ["alice", "bob"])
    assert.equal(response.bob.metas[0].status, "away")
  })

  it("untrack removes a presence while its channel stays joined", {timeout: 10000}, async () => {
    const topic = "presence:untrack"
    const alice = await member("alice", topic)
    const bob = await member("bob", topic)
    await eventually("alice to see bob", () => presenceKeys(alice.presence).join() === "alice,bob")
    assert.deepEqual(await pushed(bob.channel, "untrack"), {status: "ok", response: {}})
    await eventually("alice to see bob untracked", () => presenceKeys(alice.presence).join() === "alice")
    await eventually("bob to see himself untracked", () => presenceKeys(bob.presence).join() === "alice")
    assert.equal(bob.channel.state, "joined")
    assert.deepEqual(await pushed(bob.channel, "list"), {status: "ok", response: await pushed(alice.channel, "list").then(r => r.response)})
  })

  it("extra presences tracked by a channel appear and show in list", {timeout: 10000}, async () => {
    const topic = "presence:extra"
    const alice = await member("alice", topic)
    assert.deepEqual(await pushed(alice.channel, "track_extra", {key: "robot"}), {status: "ok", response: {}})
    await eventually("alice to see the extra presence", () => presenceKeys(alice.presence).join() === "alice,robot")
    assert.deepEqual(metasOf(alice.presence, "robot"), [{name: "robot", status: "extra"}])
  })

  it("socket.disconnect() is seen by the others as a presence leave", {timeout: 10000}, async () => {
    const topic = "presence:disconnect"
    const alice = await member("alice", topic)
    const bob = await member("bob", topic)
    await eventually("alice to see bob", () => presenceKeys(alice.presence).join() === "alice,bob")
    bob.socket.disconnect()
    await eventually("alice to see bob leave after his disconnect", () => presenceKeys(alice.presence).join() === "alice")
    assert.ok(alice.events.some(([kind, key]) => kind === "leave" && key === "bob"))
  })

  it("one user on two sockets is one key with two metas until both are gone", {timeout: 10000}, async () => {
    const topic = "presence:twice"
    const watcher = await member("watcher", topic)
    const tab1 = await member("dana", topic)
    const tab2 = await member("dana", topic)
    await eventually("two metas for dana", () => (metasOf(watcher.presence, "dana") || []).length === 2)
    tab1.socket.disconnect()
    await eventually("one meta left for dana", () => (metasOf(watcher.presence, "dana") || []).length === 1)
    await sleep(100)
    assert.deepEqual(presenceKeys(watcher.presence), ["dana", "watcher"])
    tab2.channel.leave()
    await eventually("dana gone", () => presenceKeys(watcher.presence).join() === "watcher")
  })
})
