// What machine and which versions a bench run used.
import { readFileSync, realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export function machineInfo() {
  let distro = '';
  try {
    distro = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? '';
  } catch {
    distro = '';
  }
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model ?? 'unknown',
    cores: os.availableParallelism(),
    memoryGiB: os.totalmem() / 1024 ** 3,
    os: `${distro || os.type()} (${os.type()} ${os.release()}, ${os.arch()})`,
    node: process.version,
    loadBefore: os.loadavg(),
    date: new Date().toISOString(),
  };
}

function pkgVersion(path) {
  try {
    return JSON.parse(readFileSync(path, 'utf8')).version;
  } catch {
    return 'unknown';
  }
}

/** Finds a dependency's package.json by walking up from its resolved entry point. */
function depVersion(fromDir, name) {
  try {
    const req = createRequire(join(fromDir, 'package.json'));
    let dir = dirname(req.resolve(name));
    for (let i = 0; i < 6; i++) {
      try {
        const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
        if (pkg.name === name) return pkg.version;
      } catch {
        // keep walking
      }
      dir = dirname(dir);
    }
  } catch {
    // not installed
  }
  return 'not installed';
}

export function versions() {
  const official = realpathSync(join(ROOT, 'node_modules/@phase.dev/phase-node'));
  const sdkDir = join(ROOT, 'packages/sdk');
  let libsodium = 'unknown';
  try {
    const s = createRequire(join(sdkDir, 'package.json'))('sodium-native');
    libsodium = typeof s.sodium_version_string === 'function' ? s.sodium_version_string() : 'unknown';
  } catch {
    libsodium = 'unknown';
  }
  return {
    phasekit: pkgVersion(join(sdkDir, 'package.json')),
    agent: pkgVersion(join(ROOT, 'packages/agent/package.json')),
    official: pkgVersion(join(official, 'package.json')),
    sodiumNative: depVersion(sdkDir, 'sodium-native'),
    agentSodiumNative: depVersion(join(ROOT, 'packages/agent'), 'sodium-native'),
    libsodiumWrappersSdk: depVersion(sdkDir, 'libsodium-wrappers'),
    libsodiumWrappersOfficial: depVersion(official, 'libsodium-wrappers'),
    libsodiumInSodiumNative: libsodium,
    undici: depVersion(sdkDir, 'undici'),
  };
}
