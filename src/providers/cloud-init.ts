/**
 * The user-data the `ec2` provider gives a new instance: a `#cloud-config`
 * document that writes the cluster secret, the trusted keys and two small
 * scripts, then (in cloud-init's final stage) installs Node.js 24 and Shoal and
 * starts `shoal agent` as a systemd service. The agent learns its handle (the
 * instance id) from the instance metadata service when it starts.
 * docs/cloud-init.md shows a rendered example.
 */

import type { TimerPreset } from '../shared/index.js'

export interface CloudInitInput {
  cluster: string
  /** Version of Shoal to install (what `shoal --version` must print for the install to be skipped). */
  shoalVersion: string
  /**
   * Where to install Shoal from: the launching agent's own release (a signed URL
   * and the tarball's sha256, fetched and checked by `fetch-release.sh`), or a
   * package spec for `npm install -g` (`npmPackage` in the providers file: a
   * mirror's package, a tarball URL).
   */
  install: { release: { url: string; sha256: string; name: string } } | { npmPackage: string }
  /** Content of the cluster secret file (null: an open cluster). */
  secret: string | null
  /** Contents of the trusted publisher keys. */
  trust: string[]
  bootstrap: string[]
  roles: string[]
  tags: Record<string, string>
  preset: TimerPreset
  /** The instance finds running members by their cluster tag at start (`--discover-ec2`). */
  discover?: { region: string; endpoint?: string }
}

/** Where things go on the instance. */
export const CLOUD_INIT_PATHS = {
  dir: '/etc/shoal',
  secret: '/etc/shoal/cluster.secret',
  trustDir: '/etc/shoal/trust',
  install: '/usr/local/lib/shoal/install.sh',
  fetchRelease: '/usr/local/lib/shoal/fetch-release.sh',
  runAgent: '/usr/local/lib/shoal/run-agent.sh',
  unit: '/etc/systemd/system/shoal-agent.service',
  data: '/var/lib/shoal/data',
} as const

/** The libp2p port launched agents listen on (and `discoverPeers` dials). */
export const SHOAL_PORT = 7946
/** The data-plane port launched agents listen on: fixed, so a security group can allow it. */
export const SHOAL_DATA_PORT = 7947

/** Node.js major version installed when the image has no Node 24. */
export const NODE_MAJOR = 24

/** Renders the `#cloud-config` document (plain text; the caller base64-encodes it for RunInstances). */
export function renderCloudInit(input: CloudInitInput): string {
  const files: { path: string; permissions: string; content: string; b64?: boolean }[] = []
  if (input.secret != null) {
    files.push({ path: CLOUD_INIT_PATHS.secret, permissions: '0600', content: input.secret, b64: true })
  }
  const trustFiles = input.trust.map((content, i) => {
    const path = `${CLOUD_INIT_PATHS.trustDir}/${i}.pub`
    files.push({ path, permissions: '0644', content, b64: true })
    return path
  })
  files.push({
    path: CLOUD_INIT_PATHS.runAgent,
    permissions: '0755',
    content: runAgentScript(input, trustFiles),
  })
  if ('release' in input.install)
    files.push({
      path: CLOUD_INIT_PATHS.fetchRelease,
      permissions: '0700',
      content: fetchReleaseScript(input.install.release),
    })
  files.push({ path: CLOUD_INIT_PATHS.install, permissions: '0755', content: installScript(input) })
  files.push({ path: CLOUD_INIT_PATHS.unit, permissions: '0644', content: systemdUnit(input) })

  const lines = [
    '#cloud-config',
    `# Shoal agent for cluster ${input.cluster}, rendered by the shoal ec2 provider.`,
    'write_files:',
  ]
  for (const file of files) {
    lines.push(`  - path: ${file.path}`)
    lines.push('    owner: root:root')
    lines.push(`    permissions: '${file.permissions}'`)
    if (file.b64) {
      lines.push('    encoding: b64')
      lines.push(`    content: ${Buffer.from(file.content, 'utf8').toString('base64')}`)
    } else {
      // Scripts and the unit are generated here: text lines, ending with one newline.
      lines.push('    content: |')
      for (const line of file.content.replace(/\n$/, '').split('\n'))
        lines.push(line === '' ? '' : `      ${line}`)
    }
  }
  lines.push('runcmd:')
  lines.push(`  - [bash, ${CLOUD_INIT_PATHS.install}]`)
  return `${lines.join('\n')}\n`
}

/** A word for a POSIX shell, in single quotes. */
export function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'"'"'`)}'`
}

function runAgentScript(input: CloudInitInput, trustFiles: string[]): string {
  const args: string[][] = [
    ['--cluster', shellQuote(input.cluster)],
    ['--data', CLOUD_INIT_PATHS.data],
    ['--listen', `/ip4/0.0.0.0/tcp/${SHOAL_PORT}`],
    ['--data-listen', `0.0.0.0:${SHOAL_DATA_PORT}`],
    ['--preset', shellQuote(input.preset)],
    ['--provider', 'ec2'],
    ['--handle', '"$instance_id"'],
    ['--no-mdns'],
  ]
  if (input.secret != null) args.push(['--secret-file', CLOUD_INIT_PATHS.secret])
  for (const file of trustFiles) args.push(['--trust', file])
  for (const addr of input.bootstrap) args.push(['--bootstrap', shellQuote(addr)])
  for (const role of input.roles) args.push(['--role', shellQuote(role)])
  for (const [k, v] of Object.entries(input.tags)) args.push(['--tag', shellQuote(`${k}=${v}`)])
  if (input.discover != null) {
    args.push(['--discover-ec2', shellQuote(input.discover.region)])
    if (input.discover.endpoint != null)
      args.push(['--discover-ec2-endpoint', shellQuote(input.discover.endpoint)])
  }
  return `#!/bin/bash
# Started by shoal-agent.service: reads this instance's id (the node's handle
# in the ec2 provider) from the instance metadata service, then runs the agent.
set -euo pipefail
imds=http://169.254.169.254/latest
instance_id=''
for _ in $(seq 1 30); do
  # IMDSv2 (a session token); IMDSv1 for EC2-compatible clouds without tokens.
  token=$(curl -fsS -m 2 -X PUT "$imds/api/token" -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' 2>/dev/null || true)
  if [ -n "$token" ]; then
    instance_id=$(curl -fsS -m 2 -H "X-aws-ec2-metadata-token: $token" "$imds/meta-data/instance-id" 2>/dev/null || true)
  else
    instance_id=$(curl -fsS -m 2 "$imds/meta-data/instance-id" 2>/dev/null || true)
  fi
  if [[ "$instance_id" =~ ^[A-Za-z0-9-]+$ ]]; then break; fi
  instance_id=''
  sleep 2
done
if [ -z "$instance_id" ]; then
  echo 'shoal: could not read the instance id from the metadata service' >&2
  exit 1
fi
exec shoal agent \\
${args.map((arg) => `  ${arg.join(' ')}`).join(' \\\n')}
`
}

/**
 * Downloads the launching agent's release into folder `$1`, checks its sha256 and
 * prints its path. The URL is signed and expires (docs/cloud-init.md); a refusal
 * prints the agent's JSON error (ERR_RELEASE_URL_EXPIRED, ...) to cloud-init's log.
 * curl retries what may pass (no connection yet, timeouts, 5xx), not a refusal.
 */
function fetchReleaseScript(release: { url: string; sha256: string; name: string }): string {
  return `#!/bin/bash
# Run by install.sh: fetches Shoal from the agent that launched this instance.
set -euo pipefail
dest="$1/"${shellQuote(release.name)}
status=$(curl -sS --retry 10 --retry-connrefused --retry-delay 3 --connect-timeout 10 --max-time 900 \\
  -o "$dest" -w '%{http_code}' ${shellQuote(release.url)}) || status="$status (curl exit $?)"
if [ "$status" != 200 ]; then
  echo "shoal: could not download Shoal from the launching agent (HTTP $status): $(head -c 600 "$dest" 2>/dev/null || true)" >&2
  rm -f "$dest"
  exit 1
fi
expected=${shellQuote(release.sha256)}
actual=$(sha256sum "$dest" | cut -d ' ' -f 1)
if [ "$actual" != "$expected" ]; then
  echo "shoal: the downloaded release has sha256 $actual, not $expected; not installing it" >&2
  rm -f "$dest"
  exit 1
fi
echo "$dest"
`
}

function installScript(input: CloudInitInput): string {
  const install =
    'npmPackage' in input.install
      ? `  npm install -g --no-fund --no-audit ${shellQuote(input.install.npmPackage)}`
      : `  release_dir=$(mktemp -d)
  release=$(bash ${CLOUD_INIT_PATHS.fetchRelease} "$release_dir")
  # Shoal itself comes from the launcher; its dependencies from the npm registry.
  npm install -g --no-fund --no-audit "$release"
  rm -rf "$release_dir"`
  return `#!/bin/bash
# Run once by cloud-init (runcmd): installs Node.js ${NODE_MAJOR} and Shoal unless the
# image already has them, then starts the agent.
set -euo pipefail
export PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin
# cloud-init runs this without HOME, which npm needs for its cache.
export HOME="\${HOME:-/root}"
if ! node --version 2>/dev/null | grep -q '^v${NODE_MAJOR}\\.'; then
  case "$(uname -m)" in
    x86_64) arch=x64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) echo "shoal: no Node.js build for $(uname -m)" >&2; exit 1 ;;
  esac
  base=https://nodejs.org/dist/latest-v${NODE_MAJOR}.x
  tmp=$(mktemp -d)
  curl -fsSL --retry 5 "$base/SHASUMS256.txt" -o "$tmp/SHASUMS256.txt"
  file=$(grep -m 1 -o "node-v${NODE_MAJOR}\\.[0-9.]*-linux-$arch\\.tar\\.gz" "$tmp/SHASUMS256.txt")
  curl -fsSL --retry 5 "$base/$file" -o "$tmp/$file"
  (cd "$tmp" && grep " $file\\$" SHASUMS256.txt | sha256sum -c -)
  tar -xzf "$tmp/$file" -C /usr/local --strip-components=1 --no-same-owner \\
    --exclude CHANGELOG.md --exclude LICENSE --exclude README.md
  rm -rf "$tmp"
fi
if [ "$(shoal --version 2>/dev/null || true)" != ${shellQuote(input.shoalVersion)} ]; then
${install}
fi
id -u shoal >/dev/null 2>&1 || useradd --system --home-dir /var/lib/shoal --create-home --shell /usr/sbin/nologin shoal
install -d -m 0700 -o shoal -g shoal /var/lib/shoal ${CLOUD_INIT_PATHS.data}
mkdir -p ${CLOUD_INIT_PATHS.dir}
chown -R shoal:shoal ${CLOUD_INIT_PATHS.dir}
chmod 0700 ${CLOUD_INIT_PATHS.dir}
if [ -f ${CLOUD_INIT_PATHS.secret} ]; then chmod 0600 ${CLOUD_INIT_PATHS.secret}; fi
systemctl daemon-reload
systemctl enable --now shoal-agent.service
`
}

function systemdUnit(input: CloudInitInput): string {
  return `[Unit]
Description=Shoal agent (cluster ${input.cluster})
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
User=shoal
Group=shoal
Environment=PATH=/usr/local/bin:/usr/bin:/bin
ExecStart=${CLOUD_INIT_PATHS.runAgent}
# Exit code 0 means the node was removed (drained, left): it stays stopped.
Restart=on-failure
RestartSec=5
# SIGTERM makes the agent leave the cluster gracefully.
KillSignal=SIGTERM
# Only the agent gets SIGTERM: it drains its components before it stops them (docs/systemd.md).
KillMode=mixed
TimeoutStopSec=120

[Install]
WantedBy=multi-user.target
`
}
