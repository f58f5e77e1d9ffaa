/**
 * What a benchmark runner leaves behind, and how it goes: the subprocesses
 * and temporary folders still to clean up, on every way out (also failure
 * and Ctrl-C), and the load-generator process that answers one JSON line.
 * One runner is one process, so these are the runner's own.
 */
import { REPO_ROOT } from "./launch.ts";

/** Subprocesses still running, stopped by {@linkcode stopAll}. */
export const running = new Set<{ stop: () => Promise<void> }>();

/** Temporary folders (a server's KV file) still to delete. */
export const folders = new Set<string>();

/** Stops every subprocess still running and deletes every folder still there. */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((p) => p.stop().catch(() => {})));
  running.clear();
  for (const dir of folders) await Deno.remove(dir, { recursive: true }).catch(() => {});
  folders.clear();
}

/** On SIGINT or SIGTERM, stops everything and exits 130. */
export function stopOnSignals(): void {
  const onSignal = () => stopAll().finally(() => Deno.exit(130));
  for (const s of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(s, onSignal);
}

/**
 * Runs the load generator `script` (a path from the repository root) with
 * `env`, killing it after `budgetMs`, and resolves with the JSON of the last
 * line it printed. Its stderr (progress) goes to ours. `label` names the
 * measurement in messages.
 */
export async function runLoadProcess<T>(
  script: string,
  env: Record<string, string>,
  budgetMs: number,
  label: string,
): Promise<T> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script],
    cwd: REPO_ROOT,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let exited = false;
  const handle = {
    stop: async () => {
      if (exited) return;
      try {
        child.kill("SIGKILL");
      } catch {
        // Gone already.
      }
      await child.status;
    },
  };
  running.add(handle);
  const stdout = new Response(child.stdout).text();
  const timer = setTimeout(() => {
    console.error(`[${label}] the load generator ran over ${budgetMs / 1000} s: stopping it`);
    handle.stop();
  }, budgetMs);
  const status = await child.status;
  exited = true;
  clearTimeout(timer);
  running.delete(handle);
  const line = (await stdout).trim().split("\n").pop() ?? "";
  if (!status.success || !line.startsWith("{")) {
    throw new Error(`Cannot measure ${label}: the load generator exited with ${status.code}`);
  }
  return JSON.parse(line);
}
