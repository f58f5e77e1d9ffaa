/** What Linux's /proc says about a process: its resident memory and CPU time. */
import { sleep } from "./util.ts";

/** Clock ticks per second of /proc/<pid>/stat (USER_HZ, 100 on Linux). */
const TICKS_PER_S = 100;

/** Reads a /proc file of `pid`, saying so plainly when the process is gone. */
async function readProc(pid: number, file: string): Promise<string> {
  try {
    return await Deno.readTextFile(`/proc/${pid}/${file}`);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    throw new Error(`Cannot read /proc/${pid}/${file}: process ${pid} has exited`);
  }
}

/** Resident set size of `pid` in bytes, from `VmRSS` of /proc/<pid>/status. */
export async function rssBytes(pid: number): Promise<number> {
  const status = await readProc(pid, "status");
  const kib = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status)?.[1];
  if (kib === undefined) throw new Error(`Cannot read the RSS of process ${pid}: no VmRSS`);
  return Number(kib) * 1024;
}

/** Resident memory of a process in bytes: the total and its anonymous, file-backed and shared parts. */
export interface RssParts {
  rss: number;
  anon: number;
  file: number;
  shmem: number;
}

/** `VmRSS`, `RssAnon`, `RssFile` and `RssShmem` of /proc/<pid>/status, in bytes. */
export async function rssParts(pid: number): Promise<RssParts> {
  const status = await readProc(pid, "status");
  const field = (name: string) => {
    const kib = new RegExp(`^${name}:\\s+(\\d+)\\s+kB$`, "m").exec(status)?.[1];
    if (kib === undefined) throw new Error(`Cannot read the RSS of process ${pid}: no ${name}`);
    return Number(kib) * 1024;
  };
  return {
    rss: field("VmRSS"),
    anon: field("RssAnon"),
    file: field("RssFile"),
    shmem: field("RssShmem"),
  };
}

/** User plus system CPU time of `pid` (every thread) in ms, from /proc/<pid>/stat. */
export async function cpuMs(pid: number): Promise<number> {
  const stat = await readProc(pid, "stat");
  // The command name may hold spaces and parentheses: count fields after the last ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 14 and 15 of stat(5) are utime and stime; fields[0] here is field 3.
  return (Number(fields[11]) + Number(fields[12])) * 1000 / TICKS_PER_S;
}

/** CPU time the whole machine spent busy (every core, every process) in ms, from /proc/stat. */
export async function machineBusyMs(): Promise<number> {
  const stat = await Deno.readTextFile("/proc/stat");
  const [, ...fields] = stat.slice(0, stat.indexOf("\n")).trim().split(/\s+/);
  const [user, nice, system, _idle, _iowait, irq, softirq, steal] = fields.map(Number);
  return (user + nice + system + irq + softirq + steal) * 1000 / TICKS_PER_S;
}

/** CPU time the whole machine spent idle (every core, idle and iowait) in ms, from /proc/stat. */
export async function machineIdleMs(): Promise<number> {
  const stat = await Deno.readTextFile("/proc/stat");
  const [, ...fields] = stat.slice(0, stat.indexOf("\n")).trim().split(/\s+/);
  const [, , , idle, iowait] = fields.map(Number);
  return (idle + iowait) * 1000 / TICKS_PER_S;
}

/**
 * The median by `by` of `n` readings taken `gapMs` apart: one reading of
 * RSS can catch a GC mid-way.
 */
export async function settled<T>(
  read: () => Promise<T>,
  by: (reading: T) => number,
  n = 5,
  gapMs = 200,
): Promise<T> {
  const readings: T[] = [];
  for (let i = 0; i < n; i++) {
    if (i > 0) await sleep(gapMs);
    readings.push(await read());
  }
  return readings.sort((a, b) => by(a) - by(b))[Math.floor(n / 2)];
}

/** The median of `n` RSS readings of `pid`, `gapMs` apart. */
export function settledRss(pid: number, n = 5, gapMs = 200): Promise<number> {
  return settled(() => rssBytes(pid), (bytes) => bytes, n, gapMs);
}
