package io.shoal.osgi;

import java.io.File;
import java.io.IOException;
import java.lang.module.ModuleDescriptor;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.ServiceLoader;
import java.util.TreeSet;
import org.osgi.framework.Bundle;
import org.osgi.framework.BundleContext;
import org.osgi.framework.Constants;
import org.osgi.framework.FrameworkEvent;
import org.osgi.framework.launch.Framework;
import org.osgi.framework.launch.FrameworkFactory;
import org.osgi.framework.startlevel.BundleStartLevel;

/**
 * Starts the OSGi framework on the class path (Eclipse Equinox or Apache Felix) through the
 * standard launching API, installs and starts the node's platform bundles, then Shoal's
 * management agent bundle, and runs until the framework stops (System.exit then, so no
 * thread a bundle left behind keeps the process alive).
 *
 * <pre>
 * java -cp shoal-osgi-launcher.jar:FRAMEWORK.jar io.shoal.osgi.Launcher
 *   --storage DIR        the framework's storage, emptied at start (Shoal's store is the source of truth)
 *   --agent JAR          the management agent bundle (required)
 *   --platform JAR       a platform bundle, repeatable, installed and started in order before the agent
 *   --set KEY=VALUE      a framework property, repeatable (wins over the launcher's own)
 * </pre>
 *
 * On Felix it adds what Equinox offers by itself: the osgi.ee capabilities up to the running
 * JDK and the JDK's packages as system packages (Felix 4.6.1 knows no JDK after 8).
 */
public final class Launcher {
  /** Start level of the platform bundles and the agent: before any distribution bundle (1–99, default 10). */
  private static final int PLATFORM_START_LEVEL = 1;
  /** How long a SIGTERM waits for the bundles to stop (the Shoal agent kills after 10 s). */
  private static final long STOP_WAIT_MS = 8_000;

  private Launcher() {}

  public static void main(String[] args) {
    int code;
    try {
      code = run(args);
    } catch (Throwable error) {
      System.err.println("shoal-launcher: " + describe(error));
      error.printStackTrace();
      code = 1;
    }
    System.exit(code);
  }

  private static int run(String[] args) throws Exception {
    long t0 = System.nanoTime();
    String storage = null;
    String agent = null;
    List<String> platform = new ArrayList<>();
    Map<String, String> set = new HashMap<>();
    for (int i = 0; i < args.length; i++) {
      String flag = args[i];
      if (i + 1 >= args.length) throw new IllegalArgumentException(flag + " needs a value");
      String value = args[++i];
      switch (flag) {
        case "--storage":
          storage = value;
          break;
        case "--agent":
          agent = value;
          break;
        case "--platform":
          platform.add(value);
          break;
        case "--set": {
          int eq = value.indexOf('=');
          if (eq <= 0) throw new IllegalArgumentException("--set needs KEY=VALUE, got " + value);
          set.put(value.substring(0, eq), value.substring(eq + 1));
          break;
        }
        default:
          throw new IllegalArgumentException("unknown argument " + flag);
      }
    }
    if (storage == null || agent == null) throw new IllegalArgumentException("--storage and --agent are required");

    Iterator<FrameworkFactory> factories = ServiceLoader.load(FrameworkFactory.class).iterator();
    if (!factories.hasNext())
      throw new IllegalStateException("no OSGi framework on the class path (no FrameworkFactory service)");
    FrameworkFactory factory = factories.next();
    boolean felix = factory.getClass().getName().startsWith("org.apache.felix.");

    deleteTree(Paths.get(storage));
    Map<String, String> config = new HashMap<>();
    config.put(Constants.FRAMEWORK_STORAGE, storage);
    config.put(Constants.FRAMEWORK_STORAGE_CLEAN, Constants.FRAMEWORK_STORAGE_CLEAN_ONFIRSTINIT);
    config.put(Constants.FRAMEWORK_BEGINNING_STARTLEVEL, "100");
    // Felix Gogo's shell would read the (absent) console and stop the framework at its end.
    config.put("gosh.args", "--nointeractive");
    if (felix) {
      config.put(Constants.FRAMEWORK_SYSTEMCAPABILITIES, eeCapabilities());
      config.put(Constants.FRAMEWORK_SYSTEMPACKAGES_EXTRA, jdkPackages());
      // Felix 4's URL handler proxies fail on JDK 17; bundles come as streams, no URL handler is needed.
      config.put("felix.service.urlhandlers", "false");
    }
    config.putAll(set);

    Framework framework = factory.newFramework(config);
    framework.init();
    framework.start();
    Runtime.getRuntime().addShutdownHook(new Thread(() -> stop(framework), "shoal-launcher-stop"));
    BundleContext context = framework.getBundleContext();
    log(t0, framework.getSymbolicName() + " " + framework.getVersion() + " started on Java "
        + System.getProperty("java.version") + (felix ? " (osgi.ee JavaSE up to " + Runtime.version().feature() + " and the JDK's packages added)" : ""));

    // Platform bundles: installed and started before the agent, so before any distribution bundle.
    // One that fails is reported and left as it is: a distribution that needs it fails with the framework's reason.
    List<Bundle> installed = new ArrayList<>();
    for (String jar : platform) {
      try {
        Bundle bundle = context.installBundle(new File(jar).toURI().toString());
        bundle.adapt(BundleStartLevel.class).setStartLevel(PLATFORM_START_LEVEL);
        installed.add(bundle);
      } catch (Exception error) {
        log(t0, "WARNING platform bundle " + jar + " not installed: " + describe(error));
      }
    }
    for (Bundle bundle : installed) {
      if (bundle.getHeaders().get(Constants.FRAGMENT_HOST) != null) continue;
      try {
        bundle.start();
        log(t0, "platform bundle " + bundle.getSymbolicName() + " " + bundle.getVersion() + " ACTIVE");
      } catch (Exception error) {
        log(t0, "WARNING platform bundle " + bundle.getSymbolicName() + " " + bundle.getVersion() + " did not start: " + describe(error));
      }
    }

    Bundle management = context.installBundle(new File(agent).toURI().toString());
    management.adapt(BundleStartLevel.class).setStartLevel(PLATFORM_START_LEVEL);
    management.start();
    log(t0, "management agent " + management.getVersion() + " ACTIVE");

    FrameworkEvent event = framework.waitForStop(0);
    log(t0, "framework stopped (" + eventName(event) + ")");
    return event.getType() == FrameworkEvent.STOPPED ? 0 : 1;
  }

  /** osgi.ee capabilities for the running JDK: JavaSE 1.0–1.8 and 9.0 up to its feature version, OSGi/Minimum, compact profiles. */
  static String eeCapabilities() {
    StringBuilder javaSe = new StringBuilder("1.0,1.1,1.2,1.3,1.4,1.5,1.6,1.7,1.8");
    for (int v = 9; v <= Runtime.version().feature(); v++) javaSe.append(',').append(v).append(".0");
    return "osgi.ee; osgi.ee=\"OSGi/Minimum\"; version:List<Version>=\"1.0,1.1,1.2\","
        + "osgi.ee; osgi.ee=\"JavaSE\"; version:List<Version>=\"" + javaSe + "\","
        + "osgi.ee; osgi.ee=\"JavaSE/compact1\"; version:List<Version>=\"1.8\","
        + "osgi.ee; osgi.ee=\"JavaSE/compact2\"; version:List<Version>=\"1.8\","
        + "osgi.ee; osgi.ee=\"JavaSE/compact3\"; version:List<Version>=\"1.8\"";
  }

  /** Every package the JDK's boot modules export to everyone, except java.* (always delegated to the boot loader). */
  static String jdkPackages() {
    TreeSet<String> packages = new TreeSet<>();
    for (Module module : ModuleLayer.boot().modules())
      for (ModuleDescriptor.Exports exports : module.getDescriptor().exports())
        if (!exports.isQualified() && !exports.source().startsWith("java.")) packages.add(exports.source());
    return String.join(",", packages);
  }

  private static void stop(Framework framework) {
    try {
      if ((framework.getState() & (Bundle.ACTIVE | Bundle.STARTING)) == 0) return;
      framework.stop();
      framework.waitForStop(STOP_WAIT_MS);
    } catch (Exception ignored) {
      // The process is ending anyway.
    }
  }

  private static void deleteTree(Path root) throws IOException {
    if (!Files.exists(root)) return;
    Files.walkFileTree(root, new SimpleFileVisitor<Path>() {
      @Override
      public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) throws IOException {
        Files.delete(file);
        return FileVisitResult.CONTINUE;
      }

      @Override
      public FileVisitResult postVisitDirectory(Path dir, IOException error) throws IOException {
        Files.delete(dir);
        return FileVisitResult.CONTINUE;
      }
    });
  }

  private static String eventName(FrameworkEvent event) {
    switch (event.getType()) {
      case FrameworkEvent.STOPPED:
        return "stopped";
      case FrameworkEvent.STOPPED_UPDATE:
        return "stopped for an update";
      case FrameworkEvent.ERROR:
        return "error: " + describe(event.getThrowable());
      case FrameworkEvent.WAIT_TIMEDOUT:
        return "timed out";
      default:
        return "event " + event.getType();
    }
  }

  /** The exception's message and its causes' on one line: the framework's reason. */
  static String describe(Throwable error) {
    StringBuilder text = new StringBuilder(String.valueOf(error.getMessage() == null ? error : error.getMessage()));
    for (Throwable cause = error.getCause(); cause != null && cause != cause.getCause(); cause = cause.getCause())
      text.append(" (caused by ").append(cause).append(')');
    return text.toString();
  }

  private static void log(long t0, String message) {
    System.out.println(String.format("shoal-launcher %6d ms: %s", (System.nanoTime() - t0) / 1_000_000, message));
  }
}
