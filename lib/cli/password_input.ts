/**
 * Reading a password in a CLI: from `LOOKOUT_PASSWORD`, else from a prompt
 * that does not echo, else from one line of standard input (a pipe).
 */

const encoder = new TextEncoder();

/** Reads a line from the terminal without echoing it. */
export async function promptHidden(question: string): Promise<string> {
  await Deno.stderr.write(encoder.encode(question));
  Deno.stdin.setRaw(true);
  const bytes: number[] = [];
  const buf = new Uint8Array(1);
  try {
    while (true) {
      const n = await Deno.stdin.read(buf);
      if (n === null) break;
      const c = buf[0];
      if (c === 3) {
        // Ctrl-C: Deno.exit skips `finally`, so give the terminal back first.
        Deno.stdin.setRaw(false);
        Deno.exit(130);
      }
      if (c === 13 || c === 10) break;
      if (c === 127 || c === 8) bytes.pop();
      else bytes.push(c);
    }
  } finally {
    Deno.stdin.setRaw(false);
    await Deno.stderr.write(encoder.encode("\n"));
  }
  return new TextDecoder().decode(Uint8Array.from(bytes));
}

/** The first line of standard input. */
export async function readLine(): Promise<string> {
  const reader = Deno.stdin.readable.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
  }
  await reader.cancel();
  return text.split(/\r?\n/)[0];
}

/**
 * The password: `LOOKOUT_PASSWORD`, a hidden prompt on a terminal (asked
 * twice with `confirm`; null when the two differ), or a line from a pipe.
 */
export async function readPassword(
  options: { prompt: string; confirm?: boolean },
): Promise<string | null> {
  const fromEnv = Deno.env.get("LOOKOUT_PASSWORD");
  if (fromEnv) return fromEnv;
  if (!Deno.stdin.isTerminal()) return await readLine();
  const first = await promptHidden(options.prompt);
  if (options.confirm && first !== await promptHidden("Again: ")) return null;
  return first;
}
