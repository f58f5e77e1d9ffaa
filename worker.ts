/**
 * One Lookout instance in a worker: `main.ts` starts one per core. It is
 * told its configuration (read and checked once, by the main thread), serves
 * on the shared port, and drains when told to stop.
 */
/// <reference lib="deno.worker" />
import type { Config } from "./lib/config.ts";
import { type Lookout, startLookout } from "./server.ts";
import { setupLogging } from "./lib/log.ts";

let lookout: Lookout | null = null;

self.onmessage = async (
  event: MessageEvent<{ type: "start"; config: Config } | { type: "stop" }>,
) => {
  const message = event.data;
  if (message.type === "start") {
    await setupLogging(message.config.logLevel);
    lookout = await startLookout(message.config, { reusePort: true });
    self.postMessage({ type: "started" });
  } else if (message.type === "stop") {
    await lookout?.close();
    self.postMessage({ type: "stopped" });
  }
};
