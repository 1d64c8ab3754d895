// Mount options: the one table that maps config.json's mount options to mount(2) flags, propagation
// changes and mount_setattr(2) attributes. Mirrors runc's specconv.parseMountOptions: anything not in a
// table is filesystem data ("mode=755", "size=64m") joined with "," for mount(2)'s data argument.

// mount(2) flags, include/uapi/linux/mount.h.
export const MS_RDONLY = 0x1;
export const MS_NOSUID = 0x2;
export const MS_NODEV = 0x4;
export const MS_NOEXEC = 0x8;
export const MS_SYNCHRONOUS = 0x10;
export const MS_REMOUNT = 0x20;
export const MS_MANDLOCK = 0x40;
export const MS_DIRSYNC = 0x80;
export const MS_NOSYMFOLLOW = 0x100;
export const MS_NOATIME = 0x400;
export const MS_NODIRATIME = 0x800;
export const MS_BIND = 0x1000;
export const MS_MOVE = 0x2000;
export const MS_REC = 0x4000;
export const MS_SILENT = 0x8000;
export const MS_POSIXACL = 0x10000;
export const MS_UNBINDABLE = 0x20000;
export const MS_PRIVATE = 0x40000;
export const MS_SLAVE = 0x80000;
export const MS_SHARED = 0x100000;
export const MS_RELATIME = 0x200000;
export const MS_KERNMOUNT = 0x400000;
export const MS_I_VERSION = 0x800000;
export const MS_STRICTATIME = 0x1000000;
export const MS_LAZYTIME = 0x2000000;

// mount_setattr(2) attributes (struct mount_attr attr_set / attr_clr).
export const MOUNT_ATTR_RDONLY = 0x1;
export const MOUNT_ATTR_NOSUID = 0x2;
export const MOUNT_ATTR_NODEV = 0x4;
export const MOUNT_ATTR_NOEXEC = 0x8;
export const MOUNT_ATTR__ATIME = 0x70;
export const MOUNT_ATTR_RELATIME = 0x0;
export const MOUNT_ATTR_NOATIME = 0x10;
export const MOUNT_ATTR_STRICTATIME = 0x20;
export const MOUNT_ATTR_NODIRATIME = 0x80;
export const MOUNT_ATTR_IDMAP = 0x100000;
export const MOUNT_ATTR_NOSYMFOLLOW = 0x200000;

export interface FlagOption {
  flag: number;
  /** True when the option clears `flag` ("rw" clears MS_RDONLY). */
  clear: boolean;
}

/** Options that set or clear a mount(2) flag. "defaults" is a no-op (flag 0). */
export const MOUNT_FLAGS: Readonly<Record<string, FlagOption>> = Object.freeze({
  // "acl" is not MS_POSIXACL: filesystems reject it from userspace (runc issue 3738), so it stays data.
  async: { flag: MS_SYNCHRONOUS, clear: true },
  atime: { flag: MS_NOATIME, clear: true },
  bind: { flag: MS_BIND, clear: false },
  defaults: { flag: 0, clear: false },
  dev: { flag: MS_NODEV, clear: true },
  diratime: { flag: MS_NODIRATIME, clear: true },
  dirsync: { flag: MS_DIRSYNC, clear: false },
  exec: { flag: MS_NOEXEC, clear: true },
  iversion: { flag: MS_I_VERSION, clear: false },
  lazytime: { flag: MS_LAZYTIME, clear: false },
  loud: { flag: MS_SILENT, clear: true },
  mand: { flag: MS_MANDLOCK, clear: false },
  noatime: { flag: MS_NOATIME, clear: false },
  nodev: { flag: MS_NODEV, clear: false },
  nodiratime: { flag: MS_NODIRATIME, clear: false },
  noexec: { flag: MS_NOEXEC, clear: false },
  noiversion: { flag: MS_I_VERSION, clear: true },
  nolazytime: { flag: MS_LAZYTIME, clear: true },
  nomand: { flag: MS_MANDLOCK, clear: true },
  norelatime: { flag: MS_RELATIME, clear: true },
  nostrictatime: { flag: MS_STRICTATIME, clear: true },
  nosuid: { flag: MS_NOSUID, clear: false },
  nosymfollow: { flag: MS_NOSYMFOLLOW, clear: false },
  rbind: { flag: MS_BIND | MS_REC, clear: false },
  relatime: { flag: MS_RELATIME, clear: false },
  remount: { flag: MS_REMOUNT, clear: false },
  ro: { flag: MS_RDONLY, clear: false },
  rw: { flag: MS_RDONLY, clear: true },
  silent: { flag: MS_SILENT, clear: false },
  strictatime: { flag: MS_STRICTATIME, clear: false },
  suid: { flag: MS_NOSUID, clear: true },
  sync: { flag: MS_SYNCHRONOUS, clear: false },
  symfollow: { flag: MS_NOSYMFOLLOW, clear: true },
});

/** Propagation options: each is a separate mount(2) call after the mount itself. */
export const PROPAGATION_FLAGS: Readonly<Record<string, number>> = Object.freeze({
  private: MS_PRIVATE,
  rprivate: MS_PRIVATE | MS_REC,
  shared: MS_SHARED,
  rshared: MS_SHARED | MS_REC,
  slave: MS_SLAVE,
  rslave: MS_SLAVE | MS_REC,
  unbindable: MS_UNBINDABLE,
  runbindable: MS_UNBINDABLE | MS_REC,
});

/** Recursive variants, applied with mount_setattr(AT_RECURSIVE) (Linux 5.12+). */
export const RECURSIVE_FLAGS: Readonly<Record<string, FlagOption>> = Object.freeze({
  rro: { flag: MOUNT_ATTR_RDONLY, clear: false },
  rrw: { flag: MOUNT_ATTR_RDONLY, clear: true },
  rnosuid: { flag: MOUNT_ATTR_NOSUID, clear: false },
  rsuid: { flag: MOUNT_ATTR_NOSUID, clear: true },
  rnodev: { flag: MOUNT_ATTR_NODEV, clear: false },
  rdev: { flag: MOUNT_ATTR_NODEV, clear: true },
  rnoexec: { flag: MOUNT_ATTR_NOEXEC, clear: false },
  rexec: { flag: MOUNT_ATTR_NOEXEC, clear: true },
  rnodiratime: { flag: MOUNT_ATTR_NODIRATIME, clear: false },
  rdiratime: { flag: MOUNT_ATTR_NODIRATIME, clear: true },
  rrelatime: { flag: MOUNT_ATTR_RELATIME, clear: false },
  rnorelatime: { flag: MOUNT_ATTR_RELATIME, clear: true },
  rnoatime: { flag: MOUNT_ATTR_NOATIME, clear: false },
  ratime: { flag: MOUNT_ATTR_NOATIME, clear: true },
  rstrictatime: { flag: MOUNT_ATTR_STRICTATIME, clear: false },
  rnostrictatime: { flag: MOUNT_ATTR_STRICTATIME, clear: true },
  rnosymfollow: { flag: MOUNT_ATTR_NOSYMFOLLOW, clear: false },
  rsymfollow: { flag: MOUNT_ATTR_NOSYMFOLLOW, clear: true },
});

/** Options that are Berth's (runc's) own instructions, never passed to the kernel. */
export const EXTENSION_OPTIONS: readonly string[] = Object.freeze(["tmpcopyup", "idmap", "ridmap"]);

/** Every option name that is not fs data, sorted (what `features` lists as mountOptions). */
export function knownMountOptions(): string[] {
  return [
    ...Object.keys(MOUNT_FLAGS),
    ...Object.keys(PROPAGATION_FLAGS),
    ...Object.keys(RECURSIVE_FLAGS),
    ...EXTENSION_OPTIONS,
  ].sort();
}

export interface ParsedMountOptions {
  /** mount(2) flags to set. */
  flags: number;
  /** Flags an option explicitly cleared ("rw", "suid"...): a remount must not inherit them. */
  clearFlags: number;
  /** One propagation change per entry, in the given order. */
  propagation: number[];
  /** Filesystem-specific options, in order; join with "," for mount(2)'s data. */
  data: string[];
  /** mount_setattr(AT_RECURSIVE) attributes; both 0 when no r* option was given. */
  recursive: { set: number; clear: number };
  /** Copy the image's content at the destination into the new tmpfs (runc's "tmpcopyup"). */
  tmpcopyup: boolean;
  /** "idmap" / "ridmap": make this an idmapped mount (recursively for ridmap). */
  idmap: { recursive: boolean } | null;
}

const has = (table: object, key: string) => Object.prototype.hasOwnProperty.call(table, key);

export function parseMountOptions(options: readonly string[]): ParsedMountOptions {
  const out: ParsedMountOptions = {
    flags: 0,
    clearFlags: 0,
    propagation: [],
    data: [],
    recursive: { set: 0, clear: 0 },
    tmpcopyup: false,
    idmap: null,
  };
  for (const o of options) {
    if (has(MOUNT_FLAGS, o)) {
      const { flag, clear } = MOUNT_FLAGS[o];
      // Later options win, as with mount(8): "ro,rw" is read-write.
      if (clear) {
        out.flags &= ~flag;
        out.clearFlags |= flag;
      } else {
        out.flags |= flag;
        out.clearFlags &= ~flag;
      }
    } else if (has(PROPAGATION_FLAGS, o)) {
      out.propagation.push(PROPAGATION_FLAGS[o]);
    } else if (has(RECURSIVE_FLAGS, o)) {
      const { flag, clear } = RECURSIVE_FLAGS[o];
      if (clear) {
        out.recursive.clear |= flag;
        out.recursive.set &= ~flag;
      } else {
        out.recursive.set |= flag;
        out.recursive.clear &= ~flag;
        // mount_setattr(2): an access-time mode in attr_set needs MOUNT_ATTR__ATIME in attr_clr.
        if ((flag & MOUNT_ATTR__ATIME) === flag) out.recursive.clear |= MOUNT_ATTR__ATIME;
      }
    } else if (o === "tmpcopyup") {
      out.tmpcopyup = true;
    } else if (o === "idmap" || o === "ridmap") {
      out.idmap = { recursive: o === "ridmap" };
    } else {
      out.data.push(o);
    }
  }
  return out;
}

/** "MS_NOSUID|MS_NODEV" for error messages, as runc prints them. */
export function mountFlagNames(flags: number): string {
  const names: [number, string][] = [
    [MS_RDONLY, "MS_RDONLY"], [MS_NOSUID, "MS_NOSUID"], [MS_NODEV, "MS_NODEV"], [MS_NOEXEC, "MS_NOEXEC"],
    [MS_SYNCHRONOUS, "MS_SYNCHRONOUS"], [MS_REMOUNT, "MS_REMOUNT"], [MS_MANDLOCK, "MS_MANDLOCK"],
    [MS_DIRSYNC, "MS_DIRSYNC"], [MS_NOSYMFOLLOW, "MS_NOSYMFOLLOW"], [MS_NOATIME, "MS_NOATIME"],
    [MS_NODIRATIME, "MS_NODIRATIME"], [MS_BIND, "MS_BIND"], [MS_MOVE, "MS_MOVE"], [MS_REC, "MS_REC"],
    [MS_SILENT, "MS_SILENT"], [MS_POSIXACL, "MS_POSIXACL"], [MS_UNBINDABLE, "MS_UNBINDABLE"],
    [MS_PRIVATE, "MS_PRIVATE"], [MS_SLAVE, "MS_SLAVE"], [MS_SHARED, "MS_SHARED"], [MS_RELATIME, "MS_RELATIME"],
    [MS_KERNMOUNT, "MS_KERNMOUNT"], [MS_I_VERSION, "MS_I_VERSION"], [MS_STRICTATIME, "MS_STRICTATIME"],
    [MS_LAZYTIME, "MS_LAZYTIME"],
  ];
  const parts = names.filter(([bit]) => (flags & bit) !== 0).map(([, name]) => name);
  let rest = flags;
  for (const [bit] of names) rest &= ~bit;
  if (rest !== 0) parts.push(`0x${rest.toString(16)}`);
  return parts.length ? parts.join("|") : "0";
}
