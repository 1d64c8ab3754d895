// Health checks: the container's Healthcheck (from --health-* or the image) run by exec in the
// container on an interval; results and status go back to the engine (inspect, ps, events).

import type { ContainerRecord } from "./types.js";

export interface HealthHost {
  runInContainer(r: ContainerRecord, cmd: string[], timeoutMs: number): Promise<{ exitCode: number; output: string }>;
  healthResult(r: ContainerRecord, entry: { Start: string; End: string; ExitCode: number; Output: string }, retries: number, inStartPeriod: boolean): void;
}

export const HEALTH_DEFAULTS = { intervalMs: 30_000, timeoutMs: 30_000, retries: 3, startPeriodMs: 0 };

/** The command a Healthcheck.Test runs, or undefined for none. */
export function healthCommand(test: string[] | undefined): string[] | undefined {
  if (!test || test.length === 0) return undefined;
  switch (test[0]) {
    case "NONE": return undefined;
    case "CMD": return test.slice(1).length ? test.slice(1) : undefined;
    case "CMD-SHELL": return ["/bin/sh", "-c", test.slice(1).join(" ")];
    default: return ["/bin/sh", "-c", test.join(" ")];
  }
}

export class HealthMonitor {
  readonly #host: HealthHost;
  readonly #timers = new Map<string, NodeJS.Timeout>();

  constructor(host: HealthHost) {
    this.#host = host;
  }

  start(r: ContainerRecord): void {
    this.stop(r.Id);
    const hc = r.Config.Healthcheck;
    const cmd = healthCommand(hc?.Test);
    if (!hc || !cmd) return;
    const ns = (v: number | undefined, d: number) => (v && v > 0 ? v / 1e6 : d);
    const interval = ns(hc.Interval, HEALTH_DEFAULTS.intervalMs);
    const timeout = ns(hc.Timeout, HEALTH_DEFAULTS.timeoutMs);
    const retries = hc.Retries && hc.Retries > 0 ? hc.Retries : HEALTH_DEFAULTS.retries;
    const startPeriod = ns(hc.StartPeriod, HEALTH_DEFAULTS.startPeriodMs);
    const startedAt = Date.now();
    const tick = async () => {
      if (!r.State.Running) return;
      if (r.State.Paused) return schedule();
      const start = new Date().toISOString();
      let res: { exitCode: number; output: string };
      try {
        res = await this.#host.runInContainer(r, cmd, timeout);
      } catch (err) {
        res = { exitCode: -1, output: (err as Error).message };
      }
      if (!this.#timers.has(r.Id) || !r.State.Running) return;
      this.#host.healthResult(r, { Start: start, End: new Date().toISOString(), ExitCode: res.exitCode, Output: res.output }, retries, Date.now() - startedAt < startPeriod);
      schedule();
    };
    const schedule = () => {
      if (!this.#timers.has(r.Id)) return;
      this.#timers.set(r.Id, setTimeout(() => void tick(), interval));
    };
    this.#timers.set(r.Id, setTimeout(() => void tick(), interval));
  }

  stop(id: string): void {
    const t = this.#timers.get(id);
    if (t) clearTimeout(t);
    this.#timers.delete(id);
  }

  stopAll(): void {
    for (const id of [...this.#timers.keys()]) this.stop(id);
  }
}
