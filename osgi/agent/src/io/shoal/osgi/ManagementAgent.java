package io.shoal.osgi;

import java.io.BufferedReader;
import java.io.File;
import java.io.FileInputStream;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.Writer;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.osgi.framework.Bundle;
import org.osgi.framework.BundleActivator;
import org.osgi.framework.BundleContext;
import org.osgi.framework.BundleException;
import org.osgi.framework.Constants;
import org.osgi.framework.FrameworkEvent;
import org.osgi.framework.ServiceReference;
import org.osgi.framework.startlevel.BundleStartLevel;
import org.osgi.framework.wiring.FrameworkWiring;

/**
 * Shoal's management agent: the Shoal agent drives this OSGi framework through it
 * over a loopback socket, one request per line (fields separated by tabs), one JSON
 * answer per line. It listens on the port in the framework property
 * "shoal.agent.port" and writes the bound port to "shoal.agent.portfile".
 *
 * Requests: bundles | services | install NAME PATH STARTLEVEL | update ID PATH |
 * start ID | stop ID | uninstall ID | refresh | resolve | config JSON | ping |
 * components (Declarative Services, DsComponents) | config PID JSON | unconfig PID |
 * configs (configuration by PID, Configurations). `config` with one argument sets
 * the System property "shoal.config"; with two, it configures a PID.
 */
public final class ManagementAgent implements BundleActivator {
  private BundleContext context;
  private ServerSocket server;
  private Thread acceptor;
  private Configurations configurations;

  @Override
  public void start(BundleContext context) throws Exception {
    this.context = context;
    configurations = new Configurations(context);
    configurations.open();
    int port = Integer.parseInt(property("shoal.agent.port", "0"));
    server = new ServerSocket(port, 16, InetAddress.getLoopbackAddress());
    String portFile = context.getProperty("shoal.agent.portfile");
    if (portFile != null) {
      File target = new File(portFile);
      File temp = new File(portFile + ".tmp");
      Files.write(temp.toPath(), String.valueOf(server.getLocalPort()).getBytes(StandardCharsets.UTF_8));
      Files.move(temp.toPath(), target.toPath(), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    }
    acceptor = new Thread(this::acceptLoop, "shoal-management-agent");
    acceptor.setDaemon(true);
    acceptor.start();
  }

  @Override
  public void stop(BundleContext context) throws Exception {
    server.close();
    configurations.close();
  }

  private String property(String name, String fallback) {
    String value = context.getProperty(name);
    return value == null ? fallback : value;
  }

  private void acceptLoop() {
    while (!server.isClosed()) {
      try {
        Socket socket = server.accept();
        Thread worker = new Thread(() -> serve(socket), "shoal-management-session");
        worker.setDaemon(true);
        worker.start();
      } catch (Exception closed) {
        return;
      }
    }
  }

  private void serve(Socket socket) {
    try (socket;
        BufferedReader in = new BufferedReader(new InputStreamReader(socket.getInputStream(), StandardCharsets.UTF_8));
        Writer out = new OutputStreamWriter(socket.getOutputStream(), StandardCharsets.UTF_8)) {
      String line;
      while ((line = in.readLine()) != null) {
        String answer;
        try {
          answer = "{\"ok\":true,\"result\":" + handle(line.split("\t", -1)) + "}";
        } catch (Throwable error) {
          answer = "{\"ok\":false,\"error\":" + quote(describe(error)) + "}";
        }
        out.write(answer);
        out.write('\n');
        out.flush();
      }
    } catch (Exception gone) {
      // The Shoal agent went away; it reconnects.
    }
  }

  private String handle(String[] request) throws Exception {
    switch (request[0]) {
      case "ping":
        return "\"pong\"";
      case "bundles":
        return bundles();
      case "services":
        return services();
      case "install": {
        // Location "shoal:NAME": one bundle per Shoal component, whatever its bytes.
        Bundle bundle;
        try (InputStream stream = new FileInputStream(arg(request, 2))) {
          bundle = context.installBundle("shoal:" + arg(request, 1), stream);
        }
        bundle.adapt(BundleStartLevel.class).setStartLevel(Integer.parseInt(arg(request, 3)));
        return bundle(bundle);
      }
      case "config":
        if (request.length > 2) return configurations.set(request[1], request[2]);
        // The distribution's configuration (JSON), for bundles to read as System property "shoal.config".
        System.setProperty("shoal.config", request.length > 1 ? request[1] : "{}");
        return "null";
      case "unconfig":
        return configurations.unset(arg(request, 1));
      case "configs":
        return configurations.list();
      case "components":
        return DsComponents.list(context);
      case "update": {
        Bundle bundle = byId(arg(request, 1));
        try (InputStream stream = new FileInputStream(arg(request, 2))) {
          bundle.update(stream);
        }
        return bundle(bundle);
      }
      case "start": {
        Bundle bundle = byId(arg(request, 1));
        bundle.start();
        return bundle(bundle);
      }
      case "stop": {
        Bundle bundle = byId(arg(request, 1));
        bundle.stop();
        return bundle(bundle);
      }
      case "uninstall": {
        Bundle bundle = byId(arg(request, 1));
        bundle.uninstall();
        return "null";
      }
      case "refresh":
        refresh();
        return "null";
      case "resolve": {
        FrameworkWiring wiring = context.getBundle(0).adapt(FrameworkWiring.class);
        return String.valueOf(wiring.resolveBundles(null));
      }
      default:
        throw new IllegalArgumentException("unknown request " + request[0]);
    }
  }

  /** Refreshes packages of updated and uninstalled bundles, and waits for it to finish. */
  private void refresh() throws InterruptedException {
    CountDownLatch done = new CountDownLatch(1);
    FrameworkWiring wiring = context.getBundle(0).adapt(FrameworkWiring.class);
    wiring.refreshBundles(null, event -> {
      if (event.getType() == FrameworkEvent.PACKAGES_REFRESHED) done.countDown();
    });
    if (!done.await(30, TimeUnit.SECONDS)) throw new IllegalStateException("package refresh timed out");
  }

  private Bundle byId(String id) {
    Bundle bundle = context.getBundle(Long.parseLong(id));
    if (bundle == null) throw new IllegalArgumentException("no bundle " + id);
    return bundle;
  }

  private static String arg(String[] request, int index) {
    if (index >= request.length || request[index].isEmpty())
      throw new IllegalArgumentException(request[0] + " needs argument " + index);
    return request[index];
  }

  private String bundles() {
    List<String> items = new ArrayList<>();
    for (Bundle bundle : context.getBundles()) items.add(bundle(bundle));
    return "[" + String.join(",", items) + "]";
  }

  private String bundle(Bundle bundle) {
    BundleStartLevel level = bundle.adapt(BundleStartLevel.class);
    return "{\"id\":" + bundle.getBundleId()
        + ",\"symbolicName\":" + quote(bundle.getSymbolicName())
        + ",\"version\":" + quote(bundle.getVersion().toString())
        + ",\"state\":" + quote(state(bundle.getState()))
        + ",\"startLevel\":" + (level == null ? 0 : level.getStartLevel())
        + ",\"location\":" + quote(bundle.getLocation()) + "}";
  }

  private String services() {
    List<String> items = new ArrayList<>();
    for (Bundle bundle : context.getBundles()) {
      ServiceReference<?>[] registered = bundle.getRegisteredServices();
      if (registered == null) continue;
      for (ServiceReference<?> ref : registered) {
        String[] classes = (String[]) ref.getProperty(Constants.OBJECTCLASS);
        List<String> quoted = new ArrayList<>();
        for (String name : classes) quoted.add(quote(name));
        List<String> properties = new ArrayList<>();
        for (String key : ref.getPropertyKeys()) {
          Object value = ref.getProperty(key);
          if (value instanceof String && !key.startsWith("service.") && !key.equals(Constants.OBJECTCLASS))
            properties.add(quote(key) + ":" + quote((String) value));
        }
        items.add("{\"id\":" + ref.getProperty(Constants.SERVICE_ID)
            + ",\"bundle\":" + bundle.getBundleId()
            + ",\"symbolicName\":" + quote(bundle.getSymbolicName())
            + ",\"objectClass\":[" + String.join(",", quoted) + "]"
            + ",\"properties\":{" + String.join(",", properties) + "}}");
      }
    }
    return "[" + String.join(",", items) + "]";
  }

  private static String state(int state) {
    switch (state) {
      case Bundle.UNINSTALLED: return "UNINSTALLED";
      case Bundle.INSTALLED: return "INSTALLED";
      case Bundle.RESOLVED: return "RESOLVED";
      case Bundle.STARTING: return "STARTING";
      case Bundle.STOPPING: return "STOPPING";
      case Bundle.ACTIVE: return "ACTIVE";
      default: return "UNKNOWN";
    }
  }

  private static String describe(Throwable error) {
    String message = error.getMessage() == null ? error.getClass().getSimpleName() : error.getMessage();
    if (error instanceof BundleException && error.getCause() != null && error.getCause() != error)
      message += ": " + describe(error.getCause());
    return message;
  }

  static String quote(String text) {
    if (text == null) return "null";
    StringBuilder out = new StringBuilder("\"");
    for (char c : text.toCharArray()) {
      switch (c) {
        case '"': out.append("\\\""); break;
        case '\\': out.append("\\\\"); break;
        case '\n': out.append("\\n"); break;
        case '\r': out.append("\\r"); break;
        case '\t': out.append("\\t"); break;
        default:
          if (c < 0x20) out.append(String.format("\\u%04x", (int) c));
          else out.append(c);
      }
    }
    return out.append('"').toString();
  }
}
