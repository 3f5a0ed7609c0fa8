package educa.web;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import educa.api.Catalog;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * DS component "educa.web" (OSGI-INF/educa.web.xml): the front page of Educa, served
 * with the JDK's built-in HTTP server (com.sun.net.httpserver), from the
 * {@link Catalog} service it references (1..1, static: a new catalog means a new
 * activation).
 *
 * <p>Configuration PID "educa.web", policy require: it activates only once its
 * configuration exists. Properties:
 * <ul>
 *   <li>"shoal.http.port" (Integer, Long or String; required; 0 = any free port) and
 *       "shoal.http.host" (default 127.0.0.1): where to listen. Shoal's runtime
 *       picks the port and puts both into this PID's configuration.
 *   <li>"greeting": shown on the front page.
 *   <li>"shoal.node.id": the node's name, when the SHOAL_NODE_ID environment
 *       variable is not set (else the System property of that name).
 * </ul>
 *
 * <p>Routes: GET / answers {"app","version","node","greeting","catalogVersion","catalog"};
 * GET /healthz answers {"ok":true}. A configuration change with another address
 * restarts the server there; deactivation stops it, letting requests in flight
 * finish (up to 1 s).
 */
public class WebComponent {
  private static final String DEFAULT_HOST = "127.0.0.1";
  private static final String DEFAULT_GREETING = "Welcome to Educa (OSGi)";
  private static final AtomicInteger THREADS = new AtomicInteger();

  private volatile Catalog catalog;
  private volatile Map<String, Object> properties = new LinkedHashMap<>();
  private HttpServer server;
  private ExecutorService executor;
  private InetSocketAddress address;

  /** The static 1..1 reference: SCR binds the catalog before activate. */
  public void setCatalog(Catalog catalog) {
    this.catalog = catalog;
  }

  public synchronized void activate(Map<String, Object> props) throws IOException {
    properties = new LinkedHashMap<>(props);
    start(addressOf(props));
  }

  public synchronized void modified(Map<String, Object> props) throws IOException {
    InetSocketAddress wanted = addressOf(props);
    properties = new LinkedHashMap<>(props);
    if (!wanted.equals(address)) {
      System.out.println("educa.web " + Release.VERSION + " moving to " + describe(wanted));
      stop();
      start(wanted);
    }
  }

  public synchronized void deactivate() {
    stop();
  }

  private void start(InetSocketAddress where) throws IOException {
    HttpServer created = HttpServer.create(where, 0);
    ExecutorService pool = Executors.newFixedThreadPool(4, (task) -> {
      Thread thread = new Thread(task, "educa-web-http-" + THREADS.incrementAndGet());
      thread.setDaemon(true);
      return thread;
    });
    created.createContext("/", this::handle);
    created.setExecutor(pool);
    created.start();
    server = created;
    executor = pool;
    address = where;
    System.out.println("educa.web " + Release.VERSION + " listening on http://"
        + describe(new InetSocketAddress(where.getHostString(), created.getAddress().getPort())));
  }

  private void stop() {
    if (server == null) return;
    // Shoal drains the node (load balancers confirm nothing is in flight) before it updates
    // bundles, so stop at once: on JDK 17 stop(1) waits the whole second even when idle.
    server.stop(0);
    executor.shutdown();
    System.out.println("educa.web " + Release.VERSION + " stopped listening on http://" + describe(address));
    server = null;
    executor = null;
    address = null;
  }

  private static String describe(InetSocketAddress a) {
    String host = a.getHostString();
    return (host.contains(":") ? "[" + host + "]" : host) + ":" + a.getPort();
  }

  private static InetSocketAddress addressOf(Map<String, Object> props) {
    Object host = props.get("shoal.http.host");
    String h = host == null || String.valueOf(host).isEmpty() ? DEFAULT_HOST : String.valueOf(host);
    return new InetSocketAddress(h, portOf(props.get("shoal.http.port")));
  }

  private static int portOf(Object value) {
    long port = -1;
    if (value instanceof Number) {
      port = ((Number) value).longValue();
    } else if (value instanceof String) {
      try {
        port = Long.parseLong(((String) value).trim());
      } catch (NumberFormatException e) {
        port = -1;
      }
    }
    if (port < 0 || port > 65535)
      throw new IllegalArgumentException("educa.web: configuration property shoal.http.port must be a port"
          + " number (0-65535, Integer or String), not " + (value == null ? "missing" : "\"" + value + "\""));
    return (int) port;
  }

  private String node() {
    String node = System.getenv("SHOAL_NODE_ID");
    if (node == null || node.isEmpty()) {
      Object configured = properties.get("shoal.node.id");
      node = configured != null ? String.valueOf(configured) : System.getProperty("shoal.node.id");
    }
    return node;
  }

  private Map<String, Object> frontPage() {
    Catalog c = Objects.requireNonNull(catalog, "no catalog bound");
    Map<String, Object> page = new LinkedHashMap<>();
    Object greeting = properties.get("greeting");
    page.put("app", "educa-osgi");
    page.put("version", Release.VERSION);
    page.put("node", node());
    page.put("greeting", greeting == null ? DEFAULT_GREETING : String.valueOf(greeting));
    page.put("catalogVersion", c.version());
    page.put("catalog", c.courses());
    return page;
  }

  private void handle(HttpExchange exchange) throws IOException {
    try {
      String method = exchange.getRequestMethod();
      String path = exchange.getRequestURI().getPath();
      if (!method.equals("GET") && !method.equals("HEAD")) {
        send(exchange, 405, error("method not allowed"));
      } else if (path.equals("/healthz")) {
        Map<String, Object> ok = new LinkedHashMap<>();
        ok.put("ok", true);
        send(exchange, 200, ok);
      } else if (path.equals("/")) {
        Map<String, Object> page;
        try {
          page = frontPage();
        } catch (RuntimeException e) {
          send(exchange, 500, error("catalog unavailable: " + e));
          return;
        }
        send(exchange, 200, page);
      } else {
        send(exchange, 404, error("not found"));
      }
    } finally {
      exchange.close();
    }
  }

  private static Map<String, Object> error(String message) {
    Map<String, Object> body = new LinkedHashMap<>();
    body.put("error", message);
    return body;
  }

  private static void send(HttpExchange exchange, int status, Object body) throws IOException {
    byte[] bytes = Json.write(body).getBytes(StandardCharsets.UTF_8);
    exchange.getResponseHeaders().set("Content-Type", "application/json; charset=utf-8");
    if (exchange.getRequestMethod().equals("HEAD")) {
      exchange.getResponseHeaders().set("Content-Length", String.valueOf(bytes.length));
      exchange.sendResponseHeaders(status, -1);
      return;
    }
    exchange.sendResponseHeaders(status, bytes.length);
    try (OutputStream out = exchange.getResponseBody()) {
      out.write(bytes);
    }
  }
}
