import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { promisify } from "node:util";
import { existsSync, lstatSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { tmpdir } from "node:os";
import { buildHostImage, ensureHostImage, hostImageFiles, librarySearchDirs } from "../../src/rootfs/host-image.js";
import { isElf, readElfDependencies } from "../../src/rootfs/elf.js";
import { resolveUser } from "../../src/core/users.js";

const asRoot = process.getuid?.() === 0;
// chroot lives in /usr/sbin; the same PATH is used inside the image.
const SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin";

/** Every path below a directory that is a regular file (not following symlinks). */
function regularFilesUnder(root: string): string[] {
  const files: string[] = [];
  for (const entry of readdirSync(root, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) files.push(path.join(entry.parentPath ?? entry.path, entry.name));
  }
  return files;
}

test("buildHostImage makes a working root filesystem from the host's binaries", { skip: !asRoot && "needs root for chroot" }, async () => {
  const workDir = mkdtempSync(path.join(tmpdir(), "berth-host-image-"));
  try {
    const rootfs = path.join(workDir, "rootfs");
    await buildHostImage(rootfs);

    // The usrmerged layout is kept: /bin etc. are the same symlinks as on the host.
    for (const name of ["bin", "sbin", "lib", "lib64"]) {
      const hostStat = lstatSync(`/${name}`, { throwIfNoEntry: false });
      if (hostStat?.isSymbolicLink()) assert.equal(readlinkSync(path.join(rootfs, name)), readlinkSync(`/${name}`), name);
    }

    // Every command and every ELF file in the image has each DT_NEEDED library inside the image.
    const commands = hostImageFiles();
    assert.ok(commands.length > 40, `only ${commands.length} commands found`);
    for (const command of commands) assert.ok(existsSync(path.join(rootfs, command)), `${command} missing from the image`);
    const imageFiles = regularFilesUnder(rootfs);
    let elfCount = 0;
    for (const file of imageFiles) {
      const content = readFileSync(file);
      if (!isElf(content)) continue;
      elfCount++;
      const deps = readElfDependencies(content);
      const imagePath = "/" + path.relative(rootfs, file);
      if (deps.interpreter !== undefined) {
        assert.ok(existsSync(path.join(rootfs, deps.interpreter)), `${deps.interpreter} (interpreter of ${imagePath}) missing`);
      }
      for (const soname of deps.needed) {
        const found = librarySearchDirs(deps, imagePath).some((dir) => existsSync(path.join(rootfs, dir, soname)));
        assert.ok(found, `${soname} needed by ${imagePath} is not in the image`);
      }
      // Real copies: never the host's inode, so writing in the container cannot change the host.
      const stat = statSync(file);
      assert.equal(stat.nlink, 1, `${imagePath} is hard-linked`);
    }
    assert.ok(elfCount > commands.length / 2);
    const hostLs = statSync("/bin/ls");
    const imageLs = statSync(path.join(rootfs, "bin/ls"));
    assert.notEqual(`${imageLs.dev}:${imageLs.ino}`, `${hostLs.dev}:${hostLs.ino}`);

    // The image's own loader resolves every program's libraries (LD_TRACE_LOADED_OBJECTS lists them
    // without running the program).
    for (const command of commands) {
      if (!isElf(readFileSync(path.join(rootfs, command)))) continue;
      const output = execFileSync("chroot", [rootfs, command], {
        env: { LD_TRACE_LOADED_OBJECTS: "1", PATH: SYSTEM_PATH },
        encoding: "utf8",
      });
      assert.doesNotMatch(output, /not found/, `${command}:\n${output}`);
    }

    const output = execFileSync("chroot", [rootfs, "/bin/sh", "-c", "echo ok; ls /; id"], {
      env: { PATH: SYSTEM_PATH },
      encoding: "utf8",
    });
    const lines = output.trim().split("\n");
    assert.equal(lines[0], "ok");
    for (const dir of ["bin", "dev", "etc", "home", "proc", "root", "run", "sys", "tmp", "usr", "var"]) {
      assert.ok(lines.includes(dir), `ls / lacks ${dir}: ${output}`);
    }
    assert.match(lines.at(-1)!, /^uid=0\(root\) gid=0\(root\)/);

    const asBerth = execFileSync("chroot", ["--userspec=1000:1000", "--groups=50", rootfs, "/bin/sh", "-c", "id; cd /home/berth && touch f && echo wrote"], {
      env: { PATH: SYSTEM_PATH },
      encoding: "utf8",
    });
    assert.match(asBerth, /uid=1000\(berth\) gid=1000\(berth\) groups=1000\(berth\),50\(staff\)/);
    assert.match(asBerth, /wrote/);

    // The generated files and mount points.
    assert.equal(statSync(path.join(rootfs, "tmp")).mode & 0o7777, 0o1777);
    assert.equal(statSync(path.join(rootfs, "var/tmp")).mode & 0o7777, 0o1777);
    for (const dir of ["proc", "sys", "dev", "root", "home/berth", "etc", "run"]) {
      assert.ok(statSync(path.join(rootfs, dir)).isDirectory(), dir);
    }
    assert.match(readFileSync(path.join(rootfs, "etc/hosts"), "utf8"), /^127\.0\.0\.1\s+localhost$/m);
    assert.match(readFileSync(path.join(rootfs, "etc/hosts"), "utf8"), /^::1\s+localhost/m);
    assert.ok(readFileSync(path.join(rootfs, "etc/hostname"), "utf8").trim() !== "");
    if (existsSync("/etc/resolv.conf")) {
      assert.equal(readFileSync(path.join(rootfs, "etc/resolv.conf"), "utf8"), readFileSync("/etc/resolv.conf", "utf8"));
    }
    const passwd = readFileSync(path.join(rootfs, "etc/passwd"), "utf8");
    const group = readFileSync(path.join(rootfs, "etc/group"), "utf8");
    assert.deepEqual(resolveUser("berth", passwd, group), {
      uid: 1000,
      gid: 1000,
      additionalGids: [50],
      home: "/home/berth",
      username: "berth",
    });
    assert.equal(resolveUser("nobody", passwd, group).uid, 65534);
    assert.equal(resolveUser("root:tty", passwd, group).gid, 5);
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
});

test("ensureHostImage builds once, is safe with concurrent callers and rebuilds when the host changed", { skip: !asRoot && "needs root" }, async () => {
  const dataRoot = mkdtempSync(path.join(tmpdir(), "berth-data-"));
  try {
    const imagesDir = path.join(dataRoot, "images");
    // Four racing builders (two more in another process): all get the same path, one image remains.
    const otherProcess = promisify(execFile)(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        `import { ensureHostImage } from ${JSON.stringify(new URL("../../src/rootfs/host-image.js", import.meta.url).href)};
         const paths = await Promise.all([ensureHostImage(process.argv[1]), ensureHostImage(process.argv[1])]);
         console.log(JSON.stringify(paths));`,
        dataRoot,
      ],
      { encoding: "utf8" },
    );
    const paths = await Promise.all([ensureHostImage(dataRoot), ensureHostImage(dataRoot)]);
    const { stdout: otherPaths } = await otherProcess;
    const expected = path.join(dataRoot, "images", "host", "rootfs");
    assert.deepEqual(paths, [expected, expected]);
    assert.deepEqual(JSON.parse(otherPaths), [expected, expected]);
    assert.deepEqual(readdirSync(imagesDir), ["host"], "temp dirs were left behind");
    assert.ok(existsSync(path.join(expected, "bin/sh")));

    // Up to date: the same directory is returned without rebuilding.
    const inode = statSync(expected).ino;
    assert.equal(await ensureHostImage(dataRoot), expected);
    assert.equal(statSync(expected).ino, inode);

    // A source file that changed (simulated by editing the recorded mtime) makes it rebuild.
    const stampPath = path.join(dataRoot, "images", "host", "stamp.json");
    const stamp = JSON.parse(readFileSync(stampPath, "utf8")) as { files: { path: string; mtimeMs: number }[] };
    assert.ok(stamp.files.some((file) => file.path.endsWith("/libc.so.6")), "libc is not recorded in the stamp");
    stamp.files[0]!.mtimeMs -= 1000;
    writeFileSync(stampPath, JSON.stringify(stamp));
    assert.equal(await ensureHostImage(dataRoot), expected);
    assert.notEqual(statSync(expected).ino, inode);
    assert.deepEqual(readdirSync(imagesDir), ["host"]);
    assert.equal(execFileSync("chroot", [expected, "/bin/echo", "rebuilt"], { encoding: "utf8" }), "rebuilt\n");
  } finally {
    rmSync(dataRoot, { recursive: true, force: true });
  }
});
