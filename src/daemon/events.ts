// The engine's event stream (docker's /events): a bounded history plus live subscribers.

import { EventEmitter } from "node:events";

export interface EngineEvent {
  status?: string;
  id?: string;
  from?: string;
  Type: "container" | "image" | "volume" | "network" | "daemon";
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
  scope: "local";
  time: number;
  timeNano: number;
}

export type EventFilters = Record<string, string[]>;

export function eventMatches(e: EngineEvent, filters: EventFilters): boolean {
  for (const [key, values] of Object.entries(filters)) {
    if (values.length === 0) continue;
    const ok = values.some((v) => {
      switch (key) {
        case "type": return e.Type === v;
        case "event": return e.Action === v || e.Action.split(":")[0] === v;
        case "container": return e.Type === "container" && (e.Actor.ID.startsWith(v) || e.Actor.Attributes.name === v);
        case "image": return e.Actor.Attributes.image === v || e.from === v;
        case "volume": return e.Type === "volume" && e.Actor.ID === v;
        case "label": {
          const eq = v.indexOf("=");
          return eq < 0 ? v in e.Actor.Attributes : e.Actor.Attributes[v.slice(0, eq)] === v.slice(eq + 1);
        }
        case "scope": return v === "local";
        default: return true;
      }
    });
    if (!ok) return false;
  }
  return true;
}

export class EventBus extends EventEmitter {
  readonly #history: EngineEvent[] = [];
  #lastNano = 0;

  publish(type: EngineEvent["Type"], action: string, id: string, attributes: Record<string, string> = {}): EngineEvent {
    let nano = Date.now() * 1_000_000;
    // Doubles near 1.7e18 are 256 apart: step by 1024 ns to stay strictly increasing.
    if (nano <= this.#lastNano) nano = this.#lastNano + 1024;
    this.#lastNano = nano;
    const e: EngineEvent = {
      Type: type,
      Action: action,
      Actor: { ID: id, Attributes: attributes },
      scope: "local",
      time: Math.floor(nano / 1e9),
      timeNano: nano,
    };
    if (type === "container") {
      e.status = action;
      e.id = id;
      if (attributes.image) e.from = attributes.image;
    }
    this.#history.push(e);
    if (this.#history.length > 1024) this.#history.shift();
    this.emit("event", e);
    return e;
  }

  /** Past events in [sinceMs, untilMs]. */
  history(sinceMs?: number, untilMs?: number): EngineEvent[] {
    return this.#history.filter((e) => (sinceMs === undefined || e.timeNano >= sinceMs * 1e6) && (untilMs === undefined || e.timeNano <= untilMs * 1e6));
  }
}
