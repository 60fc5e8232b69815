// A small chat on fawkes, written exactly as for a Phoenix server: the
// phoenix.js client (served unchanged as /vendor/phoenix.mjs) with a Socket,
// one Channel per room and Presence for the online list.
import {Socket, Presence, LongPoll} from "/vendor/phoenix.mjs"

const TYPING_TTL_MS = 2000
const TYPING_THROTTLE_MS = 1000

const $ = id => document.getElementById(id)
const ui = {
  name: $("name"),
  room: $("room"),
  status: $("status"),
  messages: $("messages"),
  typing: $("typing"),
  composer: $("composer"),
  body: $("body"),
  online: $("online"),
  onlineCount: $("online-count"),
}

const query = new URLSearchParams(location.search)
let user = (query.get("user") || localStorage.getItem("fawkes-chat-user") || `guest-${Math.floor(Math.random() * 9000 + 1000)}`).trim()
let room = query.get("room") || "lobby"
ui.name.value = user
ensureRoomOption(room)
ui.room.value = room

// The connect param is only a default: the join param decides who we are in a room.
// WebSocket first, falling back to LongPoll when websockets are blocked;
// ?transport=longpoll forces LongPoll.
const socket = new Socket("/socket", {
  params: {user},
  longPollFallbackMs: 2500,
  ...(query.get("transport") === "longpoll" ? {transport: LongPoll} : {}),
})
socket.onOpen(() => setStatus("online", "connected"))
socket.onError(() => setStatus("offline", "reconnecting…"))
socket.onClose(() => setStatus("offline", "reconnecting…"))
socket.connect()

let channel = null
let presence = null
let typers = new Map() // user -> expiry timer
let lastTypingSent = 0

function joinRoom(){
  if(channel){ channel.leave() }
  ui.messages.replaceChildren()
  clearTypers()
  renderOnline([])

  const topic = `room:${room}`
  channel = socket.channel(topic, () => ({user}))
  presence = new Presence(channel)
  presence.onSync(() => renderOnline(presence.list((id, {metas}) => ({id, count: metas.length}))))

  channel.on("new_msg", ({body, user: from}) => {
    stopTyping(from)
    addMessage(from, body, false)
  })
  channel.on("typing", ({user: from}) => {
    if(from && from !== user){ startTyping(from) }
  })

  channel.join()
    .receive("ok", () => addNotice(`joined #${room} as ${user}`))
    .receive("error", resp => addNotice(`could not join #${room}: ${JSON.stringify(resp)}`))
    .receive("timeout", () => addNotice("the server did not answer, retrying…"))
}

// ---- sending

ui.composer.addEventListener("submit", event => {
  event.preventDefault()
  const body = ui.body.value.trim()
  if(!body || !channel){ return }
  ui.body.value = ""
  lastTypingSent = 0
  // new_msg is relayed to the others (broadcast_from), so we render our own copy
  const item = addMessage(user, body, true)
  item.classList.add("pending")
  channel.push("new_msg", {body, user})
    .receive("ok", () => item.classList.remove("pending"))
    .receive("error", () => markFailed(item))
    .receive("timeout", () => markFailed(item))
})

ui.body.addEventListener("input", () => {
  if(!channel || !ui.body.value){ return }
  const now = Date.now()
  if(now - lastTypingSent < TYPING_THROTTLE_MS){ return }
  lastTypingSent = now
  channel.push("typing", {user})
})

// ---- identity and room

ui.identity = $("identity")
ui.identity.addEventListener("submit", event => {
  event.preventDefault()
  rename()
})
ui.name.addEventListener("change", rename)
ui.room.addEventListener("change", () => {
  room = ui.room.value
  updateUrl()
  joinRoom()
})

function rename(){
  const next = ui.name.value.trim()
  if(!next || next === user){ ui.name.value = user; return }
  user = next
  localStorage.setItem("fawkes-chat-user", user)
  updateUrl()
  // presence is keyed by the join param, so rejoin under the new name
  joinRoom()
}

function updateUrl(){
  const params = new URLSearchParams(location.search)
  params.set("user", user)
  params.set("room", room)
  history.replaceState(null, "", `?${params}`)
}

function ensureRoomOption(name){
  if(![...ui.room.options].some(o => o.value === name)){
    ui.room.append(new Option(name, name))
  }
}

// ---- rendering

function setStatus(state, text){
  ui.status.dataset.state = state
  ui.status.textContent = text
}

function addMessage(from, body, mine){
  const item = document.createElement("li")
  item.className = mine ? "message mine" : "message"
  item.dataset.user = from
  const who = document.createElement("span")
  who.className = "who"
  who.textContent = from
  const text = document.createElement("span")
  text.className = "body"
  text.textContent = body
  const time = document.createElement("time")
  time.textContent = new Date().toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"})
  item.append(who, text, time)
  appendToLog(item)
  return item
}

function addNotice(text){
  const item = document.createElement("li")
  item.className = "notice"
  item.textContent = text
  appendToLog(item)
}

function appendToLog(item){
  const atBottom = ui.messages.scrollHeight - ui.messages.scrollTop - ui.messages.clientHeight < 40
  ui.messages.append(item)
  if(atBottom){ ui.messages.scrollTop = ui.messages.scrollHeight }
}

function markFailed(item){
  item.classList.remove("pending")
  item.classList.add("failed")
  item.title = "not delivered"
}

function renderOnline(people){
  people.sort((a, b) => a.id.localeCompare(b.id))
  ui.online.replaceChildren(...people.map(({id, count}) => {
    const li = document.createElement("li")
    li.dataset.user = id
    li.textContent = id
    if(id === user){ li.classList.add("me") }
    if(count > 1){
      const tabs = document.createElement("small")
      tabs.textContent = ` ×${count}`
      li.append(tabs)
    }
    return li
  }))
  ui.onlineCount.textContent = String(people.length)
}

// ---- typing indicator: an ephemeral event, forgotten after TYPING_TTL_MS

function startTyping(from){
  clearTimeout(typers.get(from))
  typers.set(from, setTimeout(() => stopTyping(from), TYPING_TTL_MS))
  renderTyping()
}

function stopTyping(from){
  if(!typers.has(from)){ return }
  clearTimeout(typers.get(from))
  typers.delete(from)
  renderTyping()
}

function clearTypers(){
  for(const timer of typers.values()){ clearTimeout(timer) }
  typers = new Map()
  renderTyping()
}

function renderTyping(){
  const names = [...typers.keys()]
  ui.typing.textContent =
    names.length === 0 ? "" :
    names.length === 1 ? `${names[0]} is typing…` :
    `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]} are typing…`
}

joinRoom()
