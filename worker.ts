/**
 * One Lookout instance in a worker: `main.ts` starts one per core. It is
 * told its configuration (read and checked once, by the main thread), serves
 * on the shared port, and drains when told to stop.
 */
/// <reference lib="deno.worker" />
import type { Config } from "./lib/config.ts";
import { type Lookout, startLookout } from "./server.ts";
import { flushLogs, setupLogging } from "./lib/log.ts";

let lookout: Lookout | null = null;

self.onmessage = async (
  event: MessageEvent<{ type: "start"; config: Config } | { type: "stop" }>,
) => {
  const message = event.data;
  if (message.type === "start") {
    setupLogging(message.config.logLevel, { console: message.config.logToConsole });
    lookout = await startLookout(message.config, { reusePort: true });
    self.postMessage({ type: "started" });
  } else if (message.type === "stop") {
    await lookout?.close();
    flushLogs();
    self.postMessage({ type: "stopped" });
  }
};
