// dockerd's check of a bind's propagation against the host mount that holds its source: a shared bind
// needs a shared source mount, a slave one a shared or slave source mount (else nothing would propagate).

import { readFileSync, realpathSync } from "node:fs";

interface MountInfo { mountPoint: string; shared: boolean; slave: boolean }

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

function parseMountInfo(text: string): MountInfo[] {
  return text.split("\n").filter(Boolean).map((line) => {
    const fields = line.split(" ");
    const optional = fields.slice(6, fields.indexOf("-"));
    return {
      mountPoint: unescape(fields[4]),
      shared: optional.some((f) => f.startsWith("shared:")),
      slave: optional.some((f) => f.startsWith("master:")),
    };
  });
}

/** The mount that holds `path`: the last-mounted one at the longest mount point that contains it. */
export function sourceMount(path: string, mountInfo = readFileSync("/proc/self/mountinfo", "utf8")): MountInfo | undefined {
  let real = path;
  try { real = realpathSync(path); } catch { /* as given */ }
  let best: MountInfo | undefined;
  for (const m of parseMountInfo(mountInfo)) {
    const inside = m.mountPoint === "/" || real === m.mountPoint || real.startsWith(`${m.mountPoint}/`);
    if (inside && (!best || m.mountPoint.length >= best.mountPoint.length)) best = m;
  }
  return best;
}

/** dockerd's refusal (its words) when `source`'s mount can't carry `propagation`; undefined when it can. */
export function bindPropagationError(source: string, propagation: string, mountInfo?: string): string | undefined {
  const shared = propagation === "shared" || propagation === "rshared";
  const slave = propagation === "slave" || propagation === "rslave";
  if (!shared && !slave) return undefined;
  const m = sourceMount(source, mountInfo);
  if (!m) return `path ${source} is not on any mount`;
  if (shared && !m.shared) return `path ${source} is mounted on ${m.mountPoint} but it is not a shared mount`;
  if (slave && !m.shared && !m.slave) return `path ${source} is mounted on ${m.mountPoint} but it is not a shared or slave mount`;
  return undefined;
}
