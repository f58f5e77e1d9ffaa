/**
 * Checks the Socket.IO server with the official socket.io-client before the
 * load runs, so the benchmark's own protocol client (bench/protocols.ts) is
 * known to be measuring the same conversation a real client has: connect with
 * `auth.token`, receive a broadcast `stats_update`, be disconnected by a
 * revocation, and be refused with a bad token.
 *
 *   node bench/servers/sio_check.mjs http://127.0.0.1:8002 <good token> <its jti>
 *
 * Exits 0 when every step passed; prints the failing step otherwise.
 */
import { io } from "socket.io-client";

const [base, token, jti] = process.argv.slice(2);
const deadline = setTimeout(() => fail("timed out after 10 s"), 10_000);

function fail(message) {
  console.error(`Socket.IO check failed: ${message}`);
  process.exit(1);
}

function once(emitter, event) {
  return new Promise((resolve) => emitter.once(event, (...args) => resolve(args)));
}

async function post(path, body) {
  const res = await fetch(`${base}${path}`, { method: "POST", body: JSON.stringify(body) });
  if (!res.ok) fail(`POST ${path} answered ${res.status}`);
  return await res.json();
}

const options = { transports: ["websocket"], reconnection: false };

const refused = io(base, { ...options, auth: { token: `${token}x` } });
const [error] = await once(refused, "connect_error");
if (error?.message !== "unauthorized") fail(`a bad token gave ${error?.message}`);
refused.close();

const socket = io(base, { ...options, auth: { token } });
const outcome = await Promise.race([once(socket, "connect"), once(socket, "connect_error")]);
if (!socket.connected) fail(`a good token was refused: ${outcome[0]?.message}`);
const update = once(socket, "stats_update");
await post("/broadcast", {});
const [stats] = await update;
if (typeof stats?.connections?.authenticated !== "number") fail("stats_update has no counts");
const disconnected = once(socket, "disconnect");
await post("/revoke", { jti });
const [reason] = await disconnected;
if (reason !== "io server disconnect") fail(`revocation gave disconnect reason ${reason}`);
clearTimeout(deadline);
console.log("Socket.IO check passed: connect, stats_update, revoke, refusal");
process.exit(0);
