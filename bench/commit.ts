/** What the benchmark and the soak print about the software they measured. */
import { REPO_ROOT } from "./launch.ts";

/** The trimmed standard output of `cmd args` in `cwd`; "" when it fails or is not installed. */
export async function commandOutput(cmd: string, args: string[], cwd = REPO_ROOT): Promise<string> {
  try {
    const out = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "null" })
      .output();
    return new TextDecoder().decode(out.stdout).trim();
  } catch {
    return "";
  }
}

/**
 * The commit measured, with " with uncommitted changes" when Lookout's files
 * differ from it; null outside a git checkout. The benchmark's own files do
 * not count: they are not Lookout.
 */
export async function measuredCommit(): Promise<string | null> {
  const commit = await commandOutput("git", ["rev-parse", "--short", "HEAD"]);
  if (!commit) return null;
  const dirty = await commandOutput("git", [
    "status",
    "--porcelain",
    "--untracked-files=no",
    "--",
    ".",
    ":(exclude)bench",
  ]);
  return `${commit}${dirty ? " with uncommitted changes" : ""}`;
}
