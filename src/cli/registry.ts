// `berth pull`, `berth push`, `berth login`, `berth logout`: flags -> src/distribution -> one line of
// output per result; errors are BerthErrors (exit 1, as docker pull, push and login) worded by the distribution layer.

import { type Command, Option } from "commander";
import { BerthError } from "../errors.js";
import { RegistryClient, RegistryError, insecureRegistriesFromEnv } from "../distribution/client.js";
import { removeCredentials, saveCredentials, serverKey } from "../distribution/credentials.js";
import { pullImage } from "../distribution/pull.js";
import { pushImage } from "../distribution/push.js";
import { DEFAULT_REGISTRY, normalizeRegistry, parseReference } from "../distribution/reference.js";
import { ImageStore } from "../images/store.js";
import { DEFAULT_DATA_ROOT } from "./client.js";

const collect = (value: string, previous: string[] = []) => [...previous, value];

interface CommonFlags {
  dataRoot: string;
  insecureRegistry: string[];
}

function dataRootOption(): Option {
  return new Option("--data-root <dir>", "where images are kept").env("BERTH_DATA_ROOT").default(DEFAULT_DATA_ROOT);
}

function insecureOption(): Option {
  return new Option("--insecure-registry <host[:port]>", "speak plain HTTP (or unverified HTTPS) to this registry (also BERTH_INSECURE_REGISTRIES)").argParser(collect).default([]);
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks).toString("utf8");
}

/** Asks on the terminal; `hidden` does not echo (passwords). */
async function prompt(question: string, hidden: boolean): Promise<string> {
  const stdin = process.stdin;
  process.stderr.write(question);
  return new Promise((resolve, reject) => {
    let answer = "";
    const wasRaw = stdin.isRaw;
    stdin.setRawMode?.(true);
    stdin.resume();
    stdin.setEncoding("utf8");
    const done = (err?: Error) => {
      stdin.setRawMode?.(wasRaw);
      stdin.pause();
      stdin.off("data", onData);
      process.stderr.write("\n");
      if (err) reject(err);
      else resolve(answer);
    };
    const onData = (s: string) => {
      for (const ch of s) {
        if (ch === "\r" || ch === "\n") return done();
        if (ch === "\u0003" || ch === "\u0004") return done(new BerthError("login cancelled"));
        if (ch === "\u007f" || ch === "\b") {
          answer = answer.slice(0, -1);
          if (!hidden) process.stderr.write("\b \b");
        } else {
          answer += ch;
          if (!hidden) process.stderr.write(ch);
        }
      }
    };
    stdin.on("data", onData);
  });
}

function serverOf(arg: string | undefined): string {
  if (!arg) return DEFAULT_REGISTRY;
  const r = normalizeRegistry(arg);
  if (!/^[a-z0-9.-]+(:\d+)?$|^\[[0-9a-f:.]+\](:\d+)?$/.test(r)) throw new BerthError(`invalid registry address "${arg}": expected HOST[:PORT]`);
  return r;
}

export function registerRegistryCommands(program: Command, onExit: (code: number) => void): void {
  program
    .command("pull")
    .description("Download an image from a registry")
    .usage("[OPTIONS] NAME[:TAG|@DIGEST]")
    .argument("<name>")
    .option("--platform <os/arch[/variant]>", "the platform to pull from a multi-platform image (default: this host's)")
    .option("-q, --quiet", "print only the image reference")
    .addOption(insecureOption())
    .addOption(dataRootOption())
    .action(async (name: string, flags: CommonFlags & { platform?: string; quiet?: boolean }) => {
      const ref = parseReference(name);
      const store = new ImageStore(flags.dataRoot);
      await pullImage(store, ref, { platform: flags.platform, quiet: flags.quiet, insecureRegistries: flags.insecureRegistry });
      if (flags.quiet) process.stdout.write(`${ref.full}\n`);
      onExit(0);
    });

  program
    .command("push")
    .description("Upload an image to a registry")
    .usage("[OPTIONS] NAME[:TAG]")
    .argument("<name>")
    .option("-q, --quiet", "print nothing but errors")
    .addOption(insecureOption())
    .addOption(dataRootOption())
    .action(async (name: string, flags: CommonFlags & { quiet?: boolean }) => {
      const store = new ImageStore(flags.dataRoot);
      await pushImage(store, parseReference(name), { quiet: flags.quiet, insecureRegistries: flags.insecureRegistry });
      onExit(0);
    });

  program
    .command("login")
    .description("Log in to a registry (default: Docker Hub); credentials are checked, then kept in the config file (0600)")
    .usage("[OPTIONS] [SERVER]")
    .argument("[server]")
    .option("-u, --username <user>", "user name")
    .option("-p, --password <password>", "password (prefer --password-stdin)")
    .option("--password-stdin", "read the password from standard input")
    .addOption(insecureOption())
    .action(async (server: string | undefined, flags: { username?: string; password?: string; passwordStdin?: boolean; insecureRegistry: string[] }) => {
      const registry = serverOf(server);
      let { username, password } = flags;
      if (flags.password !== undefined && flags.passwordStdin) throw new BerthError("--password and --password-stdin are mutually exclusive");
      if (flags.passwordStdin) {
        if (!username) throw new BerthError("must provide --username with --password-stdin");
        password = (await readStdin()).replace(/\r?\n$/, "");
      } else if (password !== undefined) {
        process.stderr.write("WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n");
      }
      const interactive = Boolean(process.stdin.isTTY);
      if (!username) {
        if (!interactive) throw new BerthError(`cannot log in to ${registry}: no terminal to ask for a user name: use -u USER --password-stdin`);
        username = (await prompt("Username: ", false)).trim();
      }
      if (password === undefined) {
        if (!interactive) throw new BerthError(`cannot log in to ${registry}: no terminal to ask for the password: use --password-stdin`);
        password = await prompt("Password: ", true);
      }
      if (!username || !password) throw new BerthError(`cannot log in to ${registry}: the user name and password must not be empty`);
      const client = new RegistryClient(registry, {
        credentials: { username, password },
        insecureRegistries: [...flags.insecureRegistry, ...insecureRegistriesFromEnv()],
        retries: 1,
      });
      try {
        await client.ping();
      } catch (err) {
        if (err instanceof RegistryError && err.unauthorized) {
          throw new BerthError(`login to ${registry} failed: unauthorized: incorrect username or password`);
        }
        throw new BerthError(`login to ${registry} failed: ${(err as Error).message}`);
      }
      saveCredentials(registry, { username, password });
      process.stdout.write(`Login Succeeded\n`);
      onExit(0);
    });

  program
    .command("logout")
    .description("Forget the credentials for a registry (default: Docker Hub)")
    .usage("[SERVER]")
    .argument("[server]")
    .action((server: string | undefined) => {
      const registry = serverOf(server);
      const shown = serverKey(registry);
      process.stdout.write(removeCredentials(registry) ? `Removing login credentials for ${shown}\n` : `Not logged in to ${shown}\n`);
      onExit(0);
    });
}
