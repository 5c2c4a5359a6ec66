// Drives the sidecar with the Node SDK gateio-api (npm), holding only a dummy key and secret:
// WebsocketClient subscribes to private channels, WebsocketAPIClient logs in, places and cancels
// an order over the trading API. wsUrl applies to every product of one client, so there is one
// client per product. Each result is printed as one JSON line: {step, ok, data}.
//
// usage: node ws_steps.mjs SPOT_WS_URL FUTURES_WS_URL
import { WebsocketAPIClient, WebsocketClient } from "gateio-api";

const [spotUrl, futuresUrl] = process.argv.slice(2);
const credentials = { apiKey: "dummy-key-not-gates", apiSecret: "dummy-secret-not-gates" };
const quiet = { trace() {}, info() {}, error() {} };
const out = (step, ok, data) => console.log(JSON.stringify({ step, ok, data }));
const updates = [];

function stream(url, wsKey, topics) {
  const client = new WebsocketClient({ ...credentials, wsUrl: url }, quiet);
  client.on("update", (event) => updates.push(event.channel));
  client.on("response", (event) => {
    if (event.event === "subscribe") out(`subscribe ${event.channel}`, !event.error, event.result);
  });
  client.on("exception", (event) => out("exception", false, event));
  client.subscribe(topics, wsKey);
  return client;
}

// A trading-API call resolves with Gate's answer; connectWSAPI (the login) resolves once the
// login was answered with status 200, and rejects otherwise.
async function call(step, promise, isLogin = false) {
  try {
    const answer = await promise;
    out(step, isLogin || answer?.header?.status === "200", answer?.data ?? null);
  } catch (err) {
    out(step, false, err?.data ?? String(err));
  }
}

const waitFor = async (check, ms) => {
  for (let t = 0; t < ms && !check(); t += 50) await new Promise((r) => setTimeout(r, 50));
};

const spotStream = stream(spotUrl, "spotV4", [{ topic: "spot.orders", payload: ["BTC_USDT"] }]);
const futuresStream = stream(futuresUrl, "perpFuturesUSDTV4", [
  { topic: "futures.orders", payload: ["10001", "!all"] },
  { topic: "futures.positions", payload: ["10001", "!all"] },
]);
await new Promise((r) => setTimeout(r, 500));

const spot = new WebsocketAPIClient({ ...credentials, wsUrl: spotUrl, attachEventListeners: false }, quiet);
await call("spot login", spot.getWSClient().connectWSAPI("spotV4"), true);
const order = { currency_pair: "BTC_USDT", side: "buy", amount: "0.001", price: "60000", text: "t-node-spot" };
await call("spot.order_place", spot.submitNewSpotOrder(order));
await call("spot.order_cancel", spot.cancelSpotOrder({ order_id: "t-node-spot", currency_pair: "BTC_USDT" }));

const futures = new WebsocketAPIClient({ ...credentials, wsUrl: futuresUrl, attachEventListeners: false }, quiet);
await call("futures login", futures.getWSClient().connectWSAPI("perpFuturesUSDTV4"), true);
const resting = { contract: "BTC_USDT", size: 1, price: "60000", tif: "gtc", text: "t-node-fut" };
await call("futures.order_place", futures.submitNewFuturesOrder(resting));
await call("futures.order_cancel", futures.cancelFuturesOrder({ order_id: "t-node-fut" }));
const market = { contract: "BTC_USDT", size: 1, price: "0", tif: "ioc", text: "t-node-mkt" };
await call("futures.order_place (market)", futures.submitNewFuturesOrder(market));

await waitFor(() => updates.includes("futures.positions") && updates.includes("spot.orders"), 5000);
out("updates", true, [...new Set(updates)].sort());
for (const client of [spotStream, futuresStream, spot.getWSClient(), futures.getWSClient()]) {
  client.closeAll(true);
}
process.exit(0);
