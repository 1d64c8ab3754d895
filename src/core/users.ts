// Resolving `-u`/`--user` against the image's /etc/passwd and /etc/group, with the semantics of runc's
// user.GetExecUser so a spec means here what it means under docker. Pure: the caller reads the files
// (undefined when the image has none).

import { BerthError } from "../errors.js";

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  gecos: string;
  home: string;
  shell: string;
}

export interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

export interface ResolvedUser {
  uid: number;
  gid: number;
  /** Supplementary groups from /etc/group (only when no group was given), without the primary gid. */
  additionalGids: number[];
  home: string;
  /** The passwd name when the user was found there. */
  username?: string;
}

// runc refuses ids outside [0, 2^31-1]: negative ids mean "unchanged" to setuid and friends.
const MAX_ID = 2 ** 31 - 1;

function parseId(text: string): number | undefined {
  if (!/^\d+$/.test(text)) return undefined;
  const id = Number(text);
  return id <= MAX_ID ? id : undefined;
}

function dataLines(text: string): string[][] {
  return text
    .split("\n")
    .map((line) => line.trim())
    // "#" comments and NIS "+"/"-" compat lines carry no local entry.
    .filter((line) => line !== "" && !line.startsWith("#") && !line.startsWith("+") && !line.startsWith("-"))
    .map((line) => line.split(":"));
}

/** passwd(5) entries; malformed lines (missing fields, non-numeric ids) are skipped, never read as 0. */
export function parsePasswd(text: string): PasswdEntry[] {
  const entries: PasswdEntry[] = [];
  for (const fields of dataLines(text)) {
    const [name = "", , uidText = "", gidText = "", gecos = "", home = "", shell = ""] = fields;
    const uid = parseId(uidText);
    const gid = parseId(gidText);
    if (name === "" || uid === undefined || gid === undefined) continue;
    entries.push({ name, uid, gid, gecos, home, shell });
  }
  return entries;
}

/** group(5) entries; malformed lines are skipped. */
export function parseGroup(text: string): GroupEntry[] {
  const entries: GroupEntry[] = [];
  for (const fields of dataLines(text)) {
    const [name = "", , gidText = "", membersText = ""] = fields;
    const gid = parseId(gidText);
    if (name === "" || gid === undefined) continue;
    const members = membersText
      .split(",")
      .map((member) => member.trim())
      .filter((member) => member !== "");
    entries.push({ name, gid, members });
  }
  return entries;
}

function isNumeric(text: string): boolean {
  return /^\d+$/.test(text);
}

/**
 * The ids for a user spec: "name", "uid", "name:group", "uid:gid", "name:gid", "uid:group" (empty = root).
 * Like runc: a numeric part is always an id (never looked up as a name) and need not exist in the files
 * (then gid 0 and home "/"); a name must exist. Supplementary groups are the /etc/group entries listing
 * the user by name, and only apply when no group was given.
 */
export function resolveUser(spec: string, passwd: string | undefined, group: string | undefined): ResolvedUser {
  const colon = spec.indexOf(":");
  const userPart = colon === -1 ? spec : spec.slice(0, colon);
  const groupPart = colon === -1 ? "" : spec.slice(colon + 1);
  if (groupPart.includes(":")) {
    throw new BerthError(`invalid user "${spec}": expected name, uid, name:group or uid:gid`);
  }

  const result: ResolvedUser = { uid: 0, gid: 0, additionalGids: [], home: "/" };
  const users = passwd === undefined ? [] : parsePasswd(passwd);

  let matched: PasswdEntry | undefined;
  if (userPart === "") {
    matched = users.find((entry) => entry.uid === 0);
  } else if (isNumeric(userPart)) {
    const uid = parseId(userPart);
    if (uid === undefined) throw new BerthError(`invalid user "${spec}": uid ${userPart} is out of range (0-${MAX_ID})`);
    matched = users.find((entry) => entry.uid === uid);
    result.uid = uid;
  } else {
    matched = users.find((entry) => entry.name === userPart);
    if (!matched) {
      const where = passwd === undefined ? "the image has no /etc/passwd" : "no matching entries in passwd file";
      throw new BerthError(`unable to find user ${userPart}: ${where} (use a numeric uid, or add the user to the image's /etc/passwd)`);
    }
  }
  if (matched) {
    result.uid = matched.uid;
    result.gid = matched.gid;
    result.home = matched.home === "" ? "/" : matched.home;
    result.username = matched.name;
  }

  const groups = group === undefined ? [] : parseGroup(group);
  if (groupPart !== "") {
    if (isNumeric(groupPart)) {
      const gid = parseId(groupPart);
      if (gid === undefined) throw new BerthError(`invalid user "${spec}": gid ${groupPart} is out of range (0-${MAX_ID})`);
      result.gid = gid;
    } else {
      const entry = groups.find((candidate) => candidate.name === groupPart);
      if (!entry) {
        const where = group === undefined ? "the image has no /etc/group" : "no matching entries in group file";
        throw new BerthError(`unable to find group ${groupPart}: ${where} (use a numeric gid, or add the group to the image's /etc/group)`);
      }
      result.gid = entry.gid;
    }
  } else if (result.username !== undefined) {
    const name = result.username;
    const supplementary = new Set<number>();
    for (const entry of groups) {
      if (entry.members.includes(name) && entry.gid !== result.gid) supplementary.add(entry.gid);
    }
    result.additionalGids = [...supplementary];
  }
  return result;
}

/**
 * The supplementary groups a docker container's process gets: the primary gid first, then the /etc/group
 * ones. Docker puts the primary gid there since 20.10.18 (CVE-2022-36109: without it a group that is only
 * supplementary in the image could not be dropped by -u uid:gid, and `id` shows no groups=).
 */
export function dockerAdditionalGids(user: Pick<ResolvedUser, "gid" | "additionalGids">): number[] {
  return [user.gid, ...user.additionalGids.filter((g) => g !== user.gid)];
}
