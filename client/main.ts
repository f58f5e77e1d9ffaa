/// <reference lib="dom" />
/**
 * The island entry: finds each server-rendered island marker, hydrates it
 * with the props the server wrote beside it, and starts the live socket.
 */
import { h, hydrate } from "preact";
import type { ComponentType } from "preact";
import { startLive } from "./store.ts";
import AttemptFeed from "../islands/AttemptFeed.tsx";
import AttemptsExplorer from "../islands/AttemptsExplorer.tsx";
import Charts from "../islands/Charts.tsx";
import ConnectionsTable from "../islands/ConnectionsTable.tsx";
import ConnectionBadge from "../islands/ConnectionBadge.tsx";
import DebugConsole from "../islands/DebugConsole.tsx";
import KeysManager from "../islands/KeysManager.tsx";
import LiveStats from "../islands/LiveStats.tsx";
import MetricsBoard from "../islands/MetricsBoard.tsx";

// deno-lint-ignore no-explicit-any
const ISLANDS: Record<string, ComponentType<any>> = {
  AttemptFeed,
  AttemptsExplorer,
  Charts,
  ConnectionsTable,
  ConnectionBadge,
  DebugConsole,
  KeysManager,
  LiveStats,
  MetricsBoard,
};

for (const el of document.querySelectorAll<HTMLElement>("[data-island]")) {
  const island = ISLANDS[el.dataset.island ?? ""];
  if (!island) continue;
  const props = JSON.parse(el.dataset.props ?? "{}");
  hydrate(h(island, props), el);
}
if (document.body.dataset.live === "true") {
  // Only the metrics page asks for `metrics`: other pages would be sent updates they drop.
  startLive(document.querySelector('[data-island="MetricsBoard"]') ? ["metrics"] : []);
}
