import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { promisify } from 'node:util'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { buildEducaOsgi, type EducaOsgiVersion } from '../../examples/educa-osgi/build.mjs'
import { freePort } from '../../src/shared/ports.js'
import { skipReason } from '../helpers/skip.js'
import { waitFor } from '../helpers/wait.js'

/*
 * examples/educa-osgi, built and run in a real OSGi framework with Declarative
 * Services and Configuration Admin from Debian's packages, without Shoal's agent:
 * a launcher compiled here starts Eclipse Equinox through FrameworkFactory and
 * obeys commands on stdin (install, start, update, refresh, config, scr), so the
 * test does what the runtime does (decisions 5 and 6 of issue 22: configuration
 * by PID through ConfigurationAdmin, the HTTP port in the component's PID).
 */

const run = promisify(execFile)
const JAVA = '/usr/share/java'
const PLATFORM = {
  equinox: `${JAVA}/eclipse-osgi.jar`,
  osgiCore: `${JAVA}/osgi.core.jar`,
  osgiCmpn: `${JAVA}/osgi.cmpn.jar`,
  configAdmin: `${JAVA}/equinox-cm.jar`,
  scr: `${JAVA}/org.apache.felix.scr.jar`,
}
const DEBIAN: Record<keyof typeof PLATFORM, string> = {
  equinox: 'libeclipse-osgi-java',
  osgiCore: 'libosgi-core-java',
  osgiCmpn: 'libosgi-compendium-java',
  configAdmin: 'libequinox-cm-java',
  scr: 'libfelix-scr-java',
}

function jdkTool(name: string): string | null {
  const candidates = [process.env.JAVA_HOME && join(process.env.JAVA_HOME, 'bin', name), name]
  for (const tool of candidates.filter((c): c is string => Boolean(c))) {
    try {
      execFileSync(tool, ['--version'], { stdio: 'ignore' })
      return tool
    } catch {}
  }
  return null
}

const javac = jdkTool('javac')
const java = jdkTool('java')
const jarTool = jdkTool('jar')

const buildMissing = (): string | null => {
  if (javac == null) return 'no JDK (javac) in JAVA_HOME or on the PATH (Debian: default-jdk-headless)'
  for (const key of ['osgiCore', 'osgiCmpn'] as const)
    if (!existsSync(PLATFORM[key])) return `${PLATFORM[key]} is missing (Debian: ${DEBIAN[key]})`
  return null
}
const runMissing = (): string | null => {
  const build = buildMissing()
  if (build != null) return build
  if (java == null || jarTool == null) return 'no Java runtime or jar tool (JAVA_HOME or the PATH)'
  for (const [key, path] of Object.entries(PLATFORM))
    if (!existsSync(path)) return `${path} is missing (Debian: ${DEBIAN[key as keyof typeof PLATFORM]})`
  return null
}

const BUILD_SUITE = 'examples/educa-osgi: the build'
const RUN_SUITE = 'examples/educa-osgi: bundles in Equinox with SCR and Config Admin'
const cannotBuild = skipReason(import.meta.url, BUILD_SUITE, buildMissing())
const cannotRun = skipReason(import.meta.url, RUN_SUITE, runMissing())

interface Descriptor {
  name: string
  start: { osgi: { startLevel: number; pid?: string } }
  http?: boolean
  health?: { http: string }
  provides?: string[]
}
interface DistributionFile {
  artifacts: Record<string, { kind: string; descriptor: Descriptor }>
  config: { osgi: Record<string, Record<string, unknown>> }
}

const readDistribution = async (dir: string): Promise<DistributionFile> =>
  JSON.parse(await readFile(join(dir, 'distribution.json'), 'utf8'))

/** The entries of a jar written uncompressed (as build.mjs writes them), by name, in order. */
function storedEntries(zip: Buffer): Map<string, Buffer> {
  const end = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]))
  const count = zip.readUInt16LE(end + 10)
  let at = zip.readUInt32LE(end + 16)
  const entries = new Map<string, Buffer>()
  for (let i = 0; i < count; i++) {
    expect(zip.readUInt32LE(at)).toBe(0x02014b50)
    expect(zip.readUInt16LE(at + 10)).toBe(0) // stored
    const size = zip.readUInt32LE(at + 20)
    const nameLength = zip.readUInt16LE(at + 28)
    const extra = zip.readUInt16LE(at + 30) + zip.readUInt16LE(at + 32)
    const local = zip.readUInt32LE(at + 42)
    const name = zip.subarray(at + 46, at + 46 + nameLength).toString('utf8')
    const data = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28)
    entries.set(name, zip.subarray(data, data + size))
    at += 46 + nameLength + extra
  }
  return entries
}

/** A manifest's main headers, continuation lines joined. */
function manifestHeaders(text: string): Record<string, string> {
  const headers: Record<string, string> = {}
  let last = ''
  for (const line of text.split(/\r?\n/)) {
    if (line.startsWith(' ')) headers[last] += line.slice(1)
    else if (line.includes(': ')) {
      last = line.slice(0, line.indexOf(': '))
      headers[last] = line.slice(line.indexOf(': ') + 2)
    }
  }
  return headers
}

async function bundleOf(dir: string, jar: string) {
  const bytes = await readFile(join(dir, jar))
  const entries = storedEntries(bytes)
  const manifest = entries.get('META-INF/MANIFEST.MF')
  if (manifest == null) throw new Error(`${jar} has no manifest`)
  for (const line of manifest.toString('utf8').split('\r\n'))
    expect(Buffer.byteLength(line)).toBeLessThanOrEqual(72)
  return { bytes, entries, headers: manifestHeaders(manifest.toString('utf8')) }
}

let root: string
let built: Record<EducaOsgiVersion, string>

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'educa-osgi-test-'))
  if (cannotBuild == null) built = await buildEducaOsgi(join(root, 'a'))
})

afterAll(async () => {
  if (root != null) await rm(root, { recursive: true, force: true })
})

describe.skipIf(cannotBuild != null)(BUILD_SUITE, () => {
  it('is deterministic: a second build gives the same bytes, and 1.0 and 1.1 share the api bundle', async () => {
    const again = await buildEducaOsgi(join(root, 'b'))
    for (const version of ['1.0', '1.1'] as const) {
      for (const file of ['educa.api.jar', 'educa.catalog.jar', 'educa.web.jar', 'distribution.json'])
        expect(await readFile(join(again[version], file)), `${version}/${file}`).toEqual(
          await readFile(join(built[version], file)),
        )
    }
    const api = (version: EducaOsgiVersion) => readFile(join(built[version], 'educa.api.jar'))
    expect(await api('1.1')).toEqual(await api('1.0'))
    for (const jar of ['educa.catalog.jar', 'educa.web.jar'])
      expect(await readFile(join(built['1.1'], jar))).not.toEqual(await readFile(join(built['1.0'], jar)))
  })

  it('writes distribution.json as decided: osgi components with start levels and PIDs, web serving HTTP, config by PID', async () => {
    for (const version of ['1.0', '1.1'] as const) {
      const dist = await readDistribution(built[version])
      expect(dist.artifacts).toEqual({
        'educa.api.jar': {
          kind: 'component',
          descriptor: { name: 'api', start: { osgi: { startLevel: 2 } } },
        },
        'educa.catalog.jar': {
          kind: 'component',
          descriptor: { name: 'catalog', start: { osgi: { startLevel: 3, pid: 'educa.catalog' } } },
        },
        'educa.web.jar': {
          kind: 'component',
          descriptor: {
            name: 'web',
            start: { osgi: { startLevel: 4, pid: 'educa.web' } },
            http: true,
            health: { http: '/healthz' },
            provides: ['web'],
          },
        },
      })
      expect(dist.config.osgi['educa.web']).toEqual({
        greeting: expect.stringContaining(`Educa (OSGi) ${version}`),
      })
      expect(dist.config.osgi['educa.catalog']).toEqual({ language: 'en' })
    }
  })

  it('builds bundles as bnd would: osgi.ee JavaSE 11, versioned imports, DS 1.3 metadata, Java 11 classes', async () => {
    const ee = 'osgi.ee;filter:="(&(osgi.ee=JavaSE)(version=11))"'
    const scr = 'osgi.extender;filter:="(&(osgi.extender=osgi.component)(version>=1.3.0)(!(version>=2.0.0)))"'
    const api = await bundleOf(built['1.0'], 'educa.api.jar')
    expect(api.headers).toMatchObject({
      'Bundle-ManifestVersion': '2',
      'Bundle-SymbolicName': 'educa.api',
      'Bundle-Version': '1.0.0',
      'Export-Package': 'educa.api;version="1.0.0"',
      'Require-Capability': ee,
    })
    expect([...api.entries.keys()].slice(0, 2)).toEqual(['META-INF/', 'META-INF/MANIFEST.MF'])
    for (const version of ['1.0', '1.1'] as const) {
      const catalog = await bundleOf(built[version], 'educa.catalog.jar')
      expect(catalog.headers).toMatchObject({
        'Bundle-SymbolicName': 'educa.catalog',
        'Bundle-Version': `${version}.0`,
        'Import-Package': 'educa.api;version="[1.0,2)"',
        'Service-Component': 'OSGI-INF/educa.catalog.xml',
      })
      expect(catalog.headers['Require-Capability']).toBe(`${scr},${ee}`)
      const web = await bundleOf(built[version], 'educa.web.jar')
      expect(web.headers).toMatchObject({
        'Bundle-SymbolicName': 'educa.web',
        'Bundle-Version': `${version}.0`,
        'Import-Package': 'com.sun.net.httpserver,educa.api;version="[1.0,2)"',
        'Service-Component': 'OSGI-INF/educa.web.xml',
      })
      expect(web.headers['Require-Capability']).toContain(ee)
      const xml = web.entries.get('OSGI-INF/educa.web.xml')!.toString('utf8')
      expect(xml).toContain('xmlns:scr="http://www.osgi.org/xmlns/scr/v1.3.0"')
      expect(xml).toContain('configuration-policy="require"')
      expect(xml).toMatch(/cardinality="1\.\.1" policy="static"/)
      const names = [...web.entries.keys()]
      expect(names).toEqual([...names.slice(0, 2), ...names.slice(2).sort()])
      // Class file major version 55 = Java 11.
      expect(web.entries.get('educa/web/WebComponent.class')!.readUInt16BE(6)).toBe(55)
      expect(web.entries.has('educa/api/Catalog.class')).toBe(false)
    }
  })
})

describe('examples/educa-osgi: the build without a JDK', () => {
  it('fails saying what is missing', async () => {
    const script = new URL('../../examples/educa-osgi/build.mjs', import.meta.url).pathname
    const result = await run(process.execPath, [script, '--out', join(root, 'no-jdk')], {
      env: { PATH: '/nonexistent', JAVA_HOME: '/nonexistent' },
    }).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code: number; stderr: string }) => err,
    )
    expect(result.code).toBe(1)
    expect(result.stderr).toMatch(/needs a JDK 11 or newer .*default-jdk-headless/)
    expect(existsSync(join(root, 'no-jdk'))).toBe(false)
  })
})

/**
 * The test's launcher: Equinox (on the class path) through FrameworkFactory; then
 * one tab-separated command per stdin line, one "@@ ok …" or "@@ error …" answer
 * each. ConfigurationAdmin and ServiceComponentRuntime are used by reflection,
 * through the classes of the bundle that registered them (the launcher's class
 * path has no compendium API: it would be another class than the bundles'), so
 * it compiles against osgi.core alone.
 */
const LAUNCHER = String.raw`
import java.io.*;
import java.lang.reflect.*;
import java.nio.charset.StandardCharsets;
import java.util.*;
import java.util.concurrent.*;
import org.osgi.framework.*;
import org.osgi.framework.launch.*;
import org.osgi.framework.wiring.*;

public class TestLauncher {
  static Framework fw;
  static BundleContext ctx;

  public static void main(String[] args) throws Exception {
    Map<String, String> config = new HashMap<>();
    config.put(Constants.FRAMEWORK_STORAGE, args[0]);
    config.put(Constants.FRAMEWORK_STORAGE_CLEAN, Constants.FRAMEWORK_STORAGE_CLEAN_ONFIRSTINIT);
    config.put("osgi.console", "none");
    fw = ServiceLoader.load(FrameworkFactory.class).iterator().next().newFramework(config);
    fw.start();
    ctx = fw.getBundleContext();
    answer("ok", fw.getSymbolicName() + " " + fw.getVersion());
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    for (String line; (line = in.readLine()) != null; ) {
      String[] a = line.split("\t", -1);
      if (a[0].equals("stop")) break;
      try {
        answer("ok", command(a));
      } catch (Throwable e) {
        if (e instanceof InvocationTargetException) e = e.getCause();
        StringBuilder why = new StringBuilder(String.valueOf(e));
        for (Throwable c = e.getCause(); c != null; c = c.getCause()) why.append(" | caused by ").append(c);
        answer("error", why.toString().replace('\n', ' '));
      }
    }
    long t0 = System.nanoTime();
    fw.stop();
    FrameworkEvent stopped = fw.waitForStop(20000);
    answer("ok", "stopped " + stopped.getType() + " in " + (System.nanoTime() - t0) / 1000000 + " ms");
    System.exit(0);
  }

  static synchronized void answer(String status, String text) {
    System.out.println("@@ " + status + " " + text);
    System.out.flush();
  }

  static Bundle bundle(String id) {
    return ctx.getBundle(Long.parseLong(id));
  }

  static String command(String[] a) throws Exception {
    switch (a[0]) {
      case "install": return String.valueOf(ctx.installBundle(new File(a[1]).toURI().toString()).getBundleId());
      case "start": bundle(a[1]).start(); return state(bundle(a[1]));
      case "update":
        try (InputStream in = new FileInputStream(a[2])) { bundle(a[1]).update(in); }
        return state(bundle(a[1]));
      case "refresh": {
        CountDownLatch done = new CountDownLatch(1);
        fw.adapt(FrameworkWiring.class).refreshBundles(null, (FrameworkListener) e -> done.countDown());
        if (!done.await(20, TimeUnit.SECONDS)) throw new IllegalStateException("refresh did not finish in 20 s");
        return "refreshed";
      }
      case "bundles": {
        StringBuilder out = new StringBuilder();
        for (Bundle b : ctx.getBundles())
          out.append(b.getBundleId()).append(':').append(b.getSymbolicName()).append(':').append(b.getVersion())
              .append(':').append(state(b)).append(' ');
        return out.toString().trim();
      }
      case "config": return config(a);
      case "scr": return scr();
      default: throw new IllegalArgumentException("unknown command " + a[0]);
    }
  }

  static String state(Bundle b) {
    switch (b.getState()) {
      case Bundle.ACTIVE: return "ACTIVE";
      case Bundle.RESOLVED: return "RESOLVED";
      case Bundle.INSTALLED: return "INSTALLED";
      case Bundle.STARTING: return "STARTING";
      case Bundle.STOPPING: return "STOPPING";
      default: return "UNINSTALLED";
    }
  }

  static ServiceReference<?> service(String name) throws InterruptedException {
    for (int i = 0; i < 1000; i++) {
      ServiceReference<?> ref = ctx.getServiceReference(name);
      if (ref != null) return ref;
      Thread.sleep(10);
    }
    throw new IllegalStateException("no " + name + " service within 10 s");
  }

  /** config PID (KEY TYPE VALUE)*: creates or updates PID with location "?" (TYPE s = String, i = Integer). */
  static String config(String[] a) throws Exception {
    ServiceReference<?> ref = service("org.osgi.service.cm.ConfigurationAdmin");
    Object admin = ctx.getService(ref);
    Bundle owner = ref.getBundle();
    Class<?> adminType = owner.loadClass("org.osgi.service.cm.ConfigurationAdmin");
    Class<?> configurationType = owner.loadClass("org.osgi.service.cm.Configuration");
    Object configuration = adminType.getMethod("getConfiguration", String.class, String.class).invoke(admin, a[1], "?");
    Hashtable<String, Object> properties = new Hashtable<>();
    for (int i = 2; i + 2 < a.length; i += 3)
      properties.put(a[i], a[i + 1].equals("i") ? (Object) Integer.valueOf(a[i + 2]) : a[i + 2]);
    configurationType.getMethod("update", Dictionary.class).invoke(configuration, properties);
    return "configured " + a[1];
  }

  /** Every DS component configuration: NAME=STATE[,unsatisfied:REF][,failure:...] (8 = active). */
  static String scr() throws Exception {
    ServiceReference<?> ref = service("org.osgi.service.component.runtime.ServiceComponentRuntime");
    Object runtime = ctx.getService(ref);
    Bundle owner = ref.getBundle();
    Class<?> runtimeType = owner.loadClass("org.osgi.service.component.runtime.ServiceComponentRuntime");
    Class<?> descriptionType = owner.loadClass("org.osgi.service.component.runtime.dto.ComponentDescriptionDTO");
    Method configurations = runtimeType.getMethod("getComponentConfigurationDTOs", descriptionType);
    List<String> out = new ArrayList<>();
    Collection<?> descriptions = (Collection<?>) runtimeType.getMethod("getComponentDescriptionDTOs", Bundle[].class)
        .invoke(runtime, (Object) new Bundle[0]);
    for (Object d : descriptions) {
      String name = (String) d.getClass().getField("name").get(d);
      Collection<?> cs = (Collection<?>) configurations.invoke(runtime, d);
      if (cs.isEmpty()) out.add(name + "=none");
      for (Object c : cs) {
        StringBuilder s = new StringBuilder(name + "=" + c.getClass().getField("state").get(c));
        for (Object u : (Object[]) c.getClass().getField("unsatisfiedReferences").get(c))
          s.append(",unsatisfied:").append(u.getClass().getField("name").get(u));
        try {
          Object failure = c.getClass().getField("failure").get(c);
          if (failure != null) s.append(",failure:").append(String.valueOf(failure).split("\n")[0]);
        } catch (NoSuchFieldException e) {}
        out.add(s.toString());
      }
    }
    Collections.sort(out);
    return String.join(" ", out);
  }
}
`

/** shoal.osgi.cmpn as issue 22 decided it: the compendium API packages of Debian's osgi.cmpn.jar, as a bundle. */
const CMPN_PACKAGES = [
  'org/osgi/util/promise',
  'org/osgi/util/function',
  'org/osgi/util/pushstream',
  'org/osgi/service/cm',
  'org/osgi/service/log',
  'org/osgi/service/event',
  'org/osgi/service/metatype',
]
const CMPN_HEADERS = [
  'Manifest-Version: 1.0',
  'Bundle-ManifestVersion: 2',
  'Bundle-SymbolicName: shoal.osgi.cmpn',
  'Bundle-Version: 7.0.0',
  'Export-Package: org.osgi.util.function;version="1.1.0",org.osgi.util.promise;version="1.1.0";uses:="org.osgi.util.function",org.osgi.util.pushstream;version="1.0.0";uses:="org.osgi.util.function,org.osgi.util.promise",org.osgi.service.cm;version="1.6.0";uses:="org.osgi.framework",org.osgi.service.log;version="1.4.0";uses:="org.osgi.framework,org.osgi.util.pushstream",org.osgi.service.event;version="1.4.0";uses:="org.osgi.framework",org.osgi.service.metatype;version="1.4.0";uses:="org.osgi.framework"',
  'Import-Package: org.osgi.framework;version="[1.6,2)",org.osgi.util.function;version="[1.1,2)",org.osgi.util.promise;version="[1.1,2)",org.osgi.util.pushstream;version="[1.0,2)",org.osgi.service.cm;version="[1.6,1.7)",org.osgi.service.log;version="[1.4,1.6)",org.osgi.service.event;version="[1.4,1.5)",org.osgi.service.metatype;version="[1.4,1.5)"',
]

/** Manifest lines of at most 72 bytes, as the jar tool expects them. */
const wrapManifest = (lines: string[]) =>
  `${lines.map((line) => line.match(/^.{1,72}|.{1,71}/g)!.join('\n ')).join('\n')}\n`

interface Launched {
  child: ChildProcess
  output: string[]
  send(...words: string[]): Promise<string>
  exit: Promise<number | null>
}

/** Starts the test launcher on Equinox; resolves once the framework is up. */
async function launch(dir: string, env: Record<string, string>): Promise<Launched> {
  const child = spawn(
    java!,
    [
      '-XX:TieredStopAtLevel=1',
      '-XX:+UseSerialGC',
      '-cp',
      `${join(dir, 'launcher')}:${PLATFORM.equinox}`,
      'TestLauncher',
      join(dir, 'storage'),
    ],
    { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['pipe', 'pipe', 'pipe'] },
  )
  const output: string[] = []
  const waiting: Array<(line: string) => void> = []
  const exit = new Promise<number | null>((done) => child.once('exit', (code) => done(code)))
  const lines = createInterface({ input: child.stdout! })
  lines.on('line', (line) => {
    output.push(line)
    if (line.startsWith('@@ ')) waiting.shift()?.(line.slice(3))
  })
  child.stderr!.on('data', (chunk) => output.push(`[stderr] ${String(chunk).trimEnd()}`))
  const next = () =>
    new Promise<string>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no answer from the launcher in 30 s; its output:\n${output.join('\n')}`)),
        30_000,
      )
      waiting.push((line) => {
        clearTimeout(timer)
        resolve(line)
      })
    })
  const send = async (...words: string[]) => {
    const answer = next()
    child.stdin!.write(`${words.join('\t')}\n`)
    const line = await answer
    if (!line.startsWith('ok '))
      throw new Error(`${words.join(' ')}: ${line}\nlauncher output:\n${output.join('\n')}`)
    return line.slice(3)
  }
  const started = await Promise.race([next(), exit.then((code) => `exited ${code}`)])
  if (!started.startsWith('ok '))
    throw new Error(`the launcher did not start: ${started}\n${output.join('\n')}`)
  return { child, output, send, exit }
}

async function get(port: number, path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(3000) })
  return { status: res.status, body: (await res.json()) as Record<string, unknown> }
}

describe.skipIf(cannotRun != null)(RUN_SUITE, () => {
  const NODE = 'node-osgi-1'
  let dir: string
  let fw: Launched
  let port: number
  const ids: Record<string, string> = {}

  beforeAll(async () => {
    dir = join(root, 'framework')
    await mkdir(join(dir, 'launcher'), { recursive: true })
    await writeFile(join(dir, 'TestLauncher.java'), LAUNCHER)
    const cmpn = join(dir, 'cmpn')
    await mkdir(cmpn, { recursive: true })
    await writeFile(join(dir, 'cmpn.mf'), wrapManifest(CMPN_HEADERS))
    await Promise.all([
      run(javac!, [
        '--release',
        '11',
        '-cp',
        PLATFORM.osgiCore,
        '-d',
        join(dir, 'launcher'),
        join(dir, 'TestLauncher.java'),
      ]),
      run(jarTool!, ['xf', PLATFORM.osgiCmpn, ...CMPN_PACKAGES], { cwd: cmpn }),
    ])
    await run(jarTool!, ['cfm', join(dir, 'shoal.osgi.cmpn.jar'), join(dir, 'cmpn.mf'), '-C', cmpn, '.'])
    fw = await launch(dir, { SHOAL_NODE_ID: NODE })
    // The platform bundles a node provides (decision 3): the compendium API, Config Admin, SCR.
    for (const jar of [join(dir, 'shoal.osgi.cmpn.jar'), PLATFORM.configAdmin, PLATFORM.scr]) {
      const id = await fw.send('install', jar)
      if (!jar.endsWith('shoal.osgi.cmpn.jar')) expect(await fw.send('start', id)).toBe('ACTIVE')
    }
    port = await freePort()
  })

  afterEach(({ task }) => {
    if (task.result?.state === 'fail' || process.env.EDUCA_OSGI_TEST_OUTPUT === '1')
      console.log(`launcher output so far:\n${fw?.output.join('\n')}`)
  })

  afterAll(async () => {
    if (fw != null && fw.child.exitCode == null && fw.child.signalCode == null) fw.child.kill('SIGKILL')
  })

  /** The bundles of a version, in start-level order, as the agent would install them. */
  async function bundlesOf(version: EducaOsgiVersion) {
    const dist = await readDistribution(built[version])
    return Object.entries(dist.artifacts)
      .map(([jar, { descriptor }]) => ({ jar, path: join(built[version], jar), ...descriptor }))
      .sort((a, b) => a.start.osgi.startLevel - b.start.osgi.startLevel)
  }

  /** The distribution's config for a PID, plus what the runtime adds for an HTTP component. */
  async function configure(version: EducaOsgiVersion, pid: string, http?: { port: number }) {
    const props = (await readDistribution(built[version])).config.osgi[pid] ?? {}
    const words = Object.entries(props).flatMap(([key, value]) => [key, 's', String(value)])
    if (http != null)
      words.push('shoal.http.host', 's', '127.0.0.1', 'shoal.http.port', 'i', String(http.port))
    await fw.send('config', pid, ...words)
  }

  const components = async () =>
    Object.fromEntries(
      (await fw.send('scr'))
        .split(' ')
        .filter((c) => c.startsWith('educa.'))
        .map((c) => c.split('=')),
    )

  it('1.0: the bundles resolve and start; web waits for its configuration, then serves the catalog', async () => {
    for (const bundle of await bundlesOf('1.0')) {
      ids[bundle.jar] = await fw.send('install', bundle.path)
      expect(await fw.send('start', ids[bundle.jar]!)).toBe('ACTIVE')
    }
    // configuration-policy: the catalog's is optional, the web's required. The catalog is a
    // delayed component: satisfied (4) until its service is first used, by web, then active (8).
    await waitFor('educa.catalog satisfied', async () => (await components())['educa.catalog'] === '4', {
      timeout: 10_000,
    })
    expect((await components())['educa.web']).toBe('none')
    await configure('1.0', 'educa.catalog')
    await configure('1.0', 'educa.web', { port })
    const front = await waitFor('GET / on 1.0', () => get(port, '/'), { timeout: 10_000 })
    expect(front).toEqual({
      status: 200,
      body: {
        app: 'educa-osgi',
        version: '1.0',
        node: NODE,
        greeting: 'Welcome to Educa (OSGi) 1.0',
        catalogVersion: '1.0',
        catalog: [
          { id: 'p2p-101', title: 'Peer-to-peer networks', language: 'en' },
          { id: 'gossip', title: 'Gossip protocols', language: 'en' },
          { id: 'swim', title: 'Failure detection with SWIM', language: 'en' },
        ],
      },
    })
    expect(await get(port, '/healthz')).toEqual({ status: 200, body: { ok: true } })
    expect((await get(port, '/nothing-here')).status).toBe(404)
    expect(await components()).toEqual({ 'educa.catalog': '8', 'educa.web': '8' })
  })

  it('a configuration change reaches both components in place; a new port moves the server', async () => {
    await fw.send('config', 'educa.catalog', 'language', 's', 'fr')
    await waitFor('courses in French', async () => {
      const { body } = await get(port, '/')
      return (body.catalog as Array<{ language: string }>).every((c) => c.language === 'fr')
    })
    const other = await freePort()
    await fw.send('config', 'educa.web', 'greeting', 's', 'Bonjour', 'shoal.http.port', 's', String(other))
    const moved = await waitFor('GET / on the new port', () => get(other, '/'), { timeout: 10_000 })
    expect(moved.body).toMatchObject({ greeting: 'Bonjour', version: '1.0' })
    await expect(get(port, '/healthz')).rejects.toThrow()
    // Back to 1.0's configuration, on the first port.
    await configure('1.0', 'educa.catalog')
    await configure('1.0', 'educa.web', { port })
    await waitFor('GET / back on the first port', () => get(port, '/'), { timeout: 10_000 })
  })

  it('1.1 in place: config first, then the changed bundles updated (same ids, api untouched): the new answer', async () => {
    const before = await fw.send('bundles')
    await configure('1.1', 'educa.catalog')
    await configure('1.1', 'educa.web', { port })
    for (const bundle of await bundlesOf('1.1')) {
      const old = await readFile(join(built['1.0'], bundle.jar))
      if (old.equals(await readFile(bundle.path))) continue
      expect(await fw.send('update', ids[bundle.jar]!, bundle.path)).toBe('ACTIVE')
    }
    await fw.send('refresh')
    const front = await waitFor(
      'GET / on 1.1',
      async () => {
        const answer = await get(port, '/')
        return answer.body.version === '1.1' && answer.body.catalogVersion === '1.1' ? answer : null
      },
      { timeout: 15_000 },
    )
    expect(front.body).toMatchObject({
      app: 'educa-osgi',
      node: NODE,
      greeting: 'Welcome to Educa (OSGi) 1.1: now with course levels',
    })
    expect(front.body.catalog).toEqual([
      { id: 'p2p-101', title: 'Peer-to-peer networks', level: 'beginner', language: 'en' },
      { id: 'gossip', title: 'Gossip protocols', level: 'intermediate', language: 'en' },
      { id: 'swim', title: 'Failure detection with SWIM', level: 'advanced', language: 'en' },
      { id: 'rollouts', title: 'Rolling upgrades', level: 'intermediate', language: 'en' },
    ])
    expect(await get(port, '/healthz')).toEqual({ status: 200, body: { ok: true } })
    expect(await components()).toEqual({ 'educa.catalog': '8', 'educa.web': '8' })
    const after = await fw.send('bundles')
    const educa = (list: string) => list.split(' ').filter((b) => b.includes(':educa.'))
    expect(educa(before)).toEqual([
      `${ids['educa.api.jar']}:educa.api:1.0.0:ACTIVE`,
      `${ids['educa.catalog.jar']}:educa.catalog:1.0.0:ACTIVE`,
      `${ids['educa.web.jar']}:educa.web:1.0.0:ACTIVE`,
    ])
    expect(educa(after)).toEqual([
      `${ids['educa.api.jar']}:educa.api:1.0.0:ACTIVE`,
      `${ids['educa.catalog.jar']}:educa.catalog:1.1.0:ACTIVE`,
      `${ids['educa.web.jar']}:educa.web:1.1.0:ACTIVE`,
    ])
  })

  it('stopping the framework deactivates web, which stops listening; the JVM exits', async () => {
    fw.child.stdin!.write('stop\n')
    expect(await fw.exit).toBe(0)
    expect(fw.output.join('\n')).toContain('educa.web 1.1 stopped listening')
    await expect(get(port, '/healthz')).rejects.toThrow()
  })
})
