// docker-pull-style progress: on a terminal one line per layer, redrawn in place
// ("a3ed95caeb02: Downloading [=====>      ]  1.2MB/3.4MB"); otherwise a plain line per status change.

export interface ProgressOutput {
  write(text: string): unknown;
  isTTY?: boolean;
}

/** docker's HumanSizeWithPrecision(size, 4): decimal units, 4 significant digits. */
export function humanSize(bytes: number): string {
  const units = ["B", "kB", "MB", "GB", "TB", "PB"];
  let v = bytes;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${Number(v.toPrecision(4))}${units[i]}`;
}

/** docker's progress bar: 50 cells of "=" for what is done, then ">" and spaces. */
export function progressBar(done: number, total: number): string {
  const width = 50;
  if (total <= 0) return "";
  const filled = Math.max(0, Math.min(width, Math.floor((done / total) * width)));
  return `[${"=".repeat(filled)}>${" ".repeat(width - filled)}] ${humanSize(done).padStart(8)}/${humanSize(total)}`;
}

export function shortId(digest: string): string {
  return digest.replace(/^[a-z0-9]+:/, "").slice(0, 12);
}

export class ProgressDisplay {
  private readonly ids: string[] = [];
  private readonly status = new Map<string, string>();
  private readonly tty: boolean;

  constructor(private readonly out: ProgressOutput, options: { tty?: boolean; quiet?: boolean } = {}) {
    this.tty = options.tty ?? Boolean(out.isTTY);
    this.quiet = options.quiet ?? false;
  }

  private readonly quiet: boolean;

  /** A line outside the per-layer block ("latest: Pulling from x", "Digest: ..."). */
  message(text: string): void {
    if (!this.quiet) this.out.write(`${text}\n`);
  }

  /**
   * Sets the status of one layer. `detail` is the bar (shown on a terminal only); a plain output gets a
   * line when the status word changes.
   */
  update(id: string, statusWord: string, detail = ""): void {
    if (this.quiet) return;
    const text = `${id}: ${statusWord}${detail && this.tty ? ` ${detail}` : ""}`;
    const previous = this.status.get(id);
    if (!this.tty) {
      if (previous !== statusWord) this.out.write(`${text}\n`);
      this.status.set(id, statusWord);
      return;
    }
    const index = this.ids.indexOf(id);
    if (index < 0) {
      this.ids.push(id);
      this.out.write(`${text}\n`);
    } else {
      if (previous === text) return;
      const up = this.ids.length - index;
      this.out.write(`\x1b[${up}A\r\x1b[2K${text}\r\x1b[${up}B`);
    }
    this.status.set(id, text);
  }
}
