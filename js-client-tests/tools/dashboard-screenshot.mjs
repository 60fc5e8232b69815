// Takes docs/dashboard.png: starts `fawkes serve` (debug build) with a
// dashboard secret, puts phoenix.js clients in node on it (websocket and
// LongPoll, several rooms with presence, a steady stream of relayed
// messages), opens /dashboard in headless Chromium and screenshots it after
// a while. Run from js-client-tests: node tools/dashboard-screenshot.mjs
import path from "node:path"
import {chromium} from "playwright-core"
import {Socket, LongPoll} from "phoenix"
import WebSocket from "ws"
import {startFawkes, repoRoot, sleep} from "../test/helpers.mjs"

const SECRET = "screenshot"
const SECONDS = Number(process.env.SECONDS || 45)
const rooms = [["room:lobby", 80], ["room:ops", 30], ["room:support", 15], ["room:random", 8]]

const server = await startFawkes({env: {FAWKES_DASHBOARD_SECRET: SECRET}})
const sockets = []
const channels = []
let n = 0
for(const [topic, count] of rooms){
  for(let i = 0; i < count; i++){
    const longpoll = n % 10 === 9
    const user = `user${++n}`
    const socket = new Socket(`ws://127.0.0.1:${server.port}/socket`,
      {transport: longpoll ? LongPoll : WebSocket, params: {user}})
    socket.connect()
    sockets.push(socket)
    const channel = socket.channel(topic, {user})
    channel.join()
    channels.push(channel)
  }
}
// about 20 relayed messages a second, most in the lobby
const chatter = setInterval(() => {
  const channel = channels[Math.floor(Math.random() * channels.length)]
  if(channel.state === "joined"){ channel.push("new_msg", {body: "hello"}, 1000) }
}, 50)

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
})
const context = await browser.newContext({viewport: {width: 1280, height: 860}, httpCredentials: {username: "admin", password: SECRET}})
const page = await context.newPage()
await page.goto(`${server.httpUrl}/dashboard`)
await page.waitForSelector('#status[data-state="live"]')
await sleep(SECONDS * 1000)
await page.click('tr[data-topic="room:support"]')
await page.waitForSelector("#presences tr[data-key]")
await sleep(1500)
const out = path.join(repoRoot, "docs", "dashboard.png")
await page.screenshot({path: out})
console.log(`wrote ${out}: ${await page.textContent("#conn-total")} connections`)
clearInterval(chatter)
for(const s of sockets){ s.disconnect() }
await browser.close()
await server.stop()
process.exit(0)
