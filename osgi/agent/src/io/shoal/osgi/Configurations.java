package io.shoal.osgi;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Dictionary;
import java.util.HashSet;
import java.util.Hashtable;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import org.osgi.framework.AllServiceListener;
import org.osgi.framework.Bundle;
import org.osgi.framework.BundleContext;
import org.osgi.framework.Constants;
import org.osgi.framework.InvalidSyntaxException;
import org.osgi.framework.ServiceEvent;
import org.osgi.framework.ServiceReference;

/**
 * The configurations Shoal pushes, by PID, and their delivery.
 *
 * With a ConfigurationAdmin service registered (Equinox CM, a platform bundle),
 * each PID becomes a Configuration created with location "?" (any bundle may
 * receive it: DS components, ManagedServices); a PID "factory~name" becomes the
 * named factory configuration `name` of `factory` (Configuration Admin 1.6).
 *
 * Without one, the agent follows the ManagedService / ManagedServiceFactory
 * contract itself: it calls updated(properties) on every ManagedService registered
 * with that service.pid, at once and again whenever one appears (updated(null)
 * when it holds nothing for it), updated(null) once the PID is removed; for
 * "factory~name" it calls updated("factory~name", properties) / deleted(...) on the
 * ManagedServiceFactory registered as "factory". Calls are made in order on one
 * thread, as Configuration Admin does. Declarative Services reads configuration
 * from Configuration Admin only, so DS components need a real one.
 *
 * Limits: nothing is persisted (the runtime pushes every PID again after a
 * framework restart), no configuration plugins, no ConfigurationListener events,
 * and a service whose service.pid changes after registration is not re-delivered.
 *
 * The cm API is reached reflectively through the classes of the bundle that
 * registered each service, so the agent runs without it (optional import).
 */
final class Configurations implements AllServiceListener {
  static final String ADMIN = "org.osgi.service.cm.ConfigurationAdmin";
  static final String CONFIGURATION = "org.osgi.service.cm.Configuration";
  static final String MANAGED = "org.osgi.service.cm.ManagedService";
  static final String FACTORY = "org.osgi.service.cm.ManagedServiceFactory";
  private static final Set<String> RESERVED =
      new HashSet<>(Arrays.asList("service.pid", "service.factorypid", "service.bundlelocation"));

  private final BundleContext context;
  /** One thread for every ManagedService call, so they happen in order and never block a request. */
  private final ExecutorService dispatch = Executors.newSingleThreadExecutor(task -> {
    Thread thread = new Thread(task, "shoal-configuration-dispatch");
    thread.setDaemon(true);
    return thread;
  });
  /** PID → the JSON text last pushed, and its properties. */
  private final Map<String, String> texts = new LinkedHashMap<>();
  private final Map<String, Hashtable<String, Object>> properties = new LinkedHashMap<>();

  Configurations(BundleContext context) {
    this.context = context;
  }

  void open() throws Exception {
    context.addServiceListener(this, "(|(objectClass=" + ADMIN + ")(objectClass=" + MANAGED + ")(objectClass="
        + FACTORY + "))");
    // ManagedServices registered before the agent started get their first updated() now.
    if (admin() == null) for (String type : new String[] {MANAGED, FACTORY}) {
      ServiceReference<?>[] refs = context.getAllServiceReferences(type, null);
      if (refs != null) for (ServiceReference<?> ref : refs) registered(ref, type);
    }
  }

  void close() {
    context.removeServiceListener(this);
    dispatch.shutdownNow();
  }

  /** `config PID JSON`: creates or updates PID with these properties. */
  synchronized String set(String pid, String json) throws Exception {
    checkPid(pid);
    Hashtable<String, Object> converted = toProperties(pid, Json.parse(json));
    boolean changed = !json.equals(texts.get(pid));
    texts.put(pid, json);
    properties.put(pid, converted);
    ServiceReference<?> admin = admin();
    if (admin != null) changed = update(admin, pid, converted);
    else if (changed) deliver(pid, converted);
    return "{\"pid\":" + ManagementAgent.quote(pid) + ",\"changed\":" + changed + ",\"through\":"
        + ManagementAgent.quote(admin != null ? "configuration-admin" : "managed-service") + "}";
  }

  /** `unconfig PID`: deletes PID (ManagedServices get updated(null)). */
  synchronized String unset(String pid) throws Exception {
    checkPid(pid);
    boolean held = texts.remove(pid) != null;
    properties.remove(pid);
    ServiceReference<?> admin = admin();
    boolean deleted = admin != null ? delete(admin, pid) : held;
    if (admin == null && held) deliver(pid, null);
    return "{\"pid\":" + ManagementAgent.quote(pid) + ",\"deleted\":" + deleted + "}";
  }

  /** `configs`: the PIDs Shoal pushed since the framework started, and how they are delivered. */
  synchronized String list() throws Exception {
    List<String> pids = new ArrayList<>();
    for (String pid : texts.keySet()) pids.add(ManagementAgent.quote(pid));
    return "{\"configurationAdmin\":" + (admin() != null) + ",\"pids\":[" + String.join(",", pids) + "]}";
  }

  @Override
  public void serviceChanged(ServiceEvent event) {
    if (event.getType() != ServiceEvent.REGISTERED) return;
    ServiceReference<?> ref = event.getServiceReference();
    List<String> types = Arrays.asList((String[]) ref.getProperty(Constants.OBJECTCLASS));
    synchronized (this) {
      if (types.contains(ADMIN)) {
        // A Configuration Admin appeared (a distribution may bring its own): it takes over what the agent holds.
        Map<String, Hashtable<String, Object>> held = new LinkedHashMap<>(properties);
        dispatch.execute(() -> {
          for (Map.Entry<String, Hashtable<String, Object>> entry : held.entrySet()) {
            try {
              update(ref, entry.getKey(), entry.getValue());
            } catch (Exception error) {
              warn("could not hand configuration " + entry.getKey() + " to Configuration Admin", error);
            }
          }
        });
        return;
      }
      if (admin() != null) return;
      if (types.contains(MANAGED)) registered(ref, MANAGED);
      if (types.contains(FACTORY)) registered(ref, FACTORY);
    }
  }

  /** A ManagedService gets what the agent holds for each of its PIDs (or null); a factory, each of its configurations. */
  private void registered(ServiceReference<?> ref, String type) {
    for (String pid : pidsOf(ref)) {
      if (type.equals(MANAGED)) call(ref, MANAGED, "updated", new Class<?>[] {Dictionary.class}, withPid(pid, properties.get(pid)));
      else for (Map.Entry<String, Hashtable<String, Object>> entry : properties.entrySet())
        if (entry.getKey().startsWith(pid + "~"))
          call(ref, FACTORY, "updated", new Class<?>[] {String.class, Dictionary.class}, entry.getKey(),
              withPid(entry.getKey(), entry.getValue()));
    }
  }

  /** Without Configuration Admin: the ManagedService(s) of PID, or the factory of "factory~name", learn the change. */
  private void deliver(String pid, Hashtable<String, Object> values) throws Exception {
    int tilde = pid.indexOf('~');
    String target = tilde > 0 ? pid.substring(0, tilde) : pid;
    String type = tilde > 0 ? FACTORY : MANAGED;
    ServiceReference<?>[] refs = context.getAllServiceReferences(type, "(service.pid=" + escape(target) + ")");
    if (refs == null) return;
    for (ServiceReference<?> ref : refs) {
      if (tilde < 0) call(ref, MANAGED, "updated", new Class<?>[] {Dictionary.class}, withPid(pid, values));
      else if (values == null) call(ref, FACTORY, "deleted", new Class<?>[] {String.class}, pid);
      else call(ref, FACTORY, "updated", new Class<?>[] {String.class, Dictionary.class}, pid, withPid(pid, values));
    }
  }

  private void call(ServiceReference<?> ref, String type, String method, Class<?>[] parameters, Object... args) {
    dispatch.execute(() -> {
      Bundle owner = ref.getBundle();
      if (owner == null) return; // unregistered meanwhile
      Object service = context.getService(ref);
      if (service == null) return;
      try {
        Method target = owner.loadClass(type).getMethod(method, parameters);
        target.invoke(service, args);
      } catch (InvocationTargetException thrown) {
        warn(type + "." + method + " of " + owner.getSymbolicName() + " threw", thrown.getCause());
      } catch (Exception error) {
        warn("could not call " + type + "." + method + " of " + owner.getSymbolicName(), error);
      } finally {
        context.ungetService(ref);
      }
    });
  }

  // --- through Configuration Admin ------------------------------------------------------

  /** The ConfigurationAdmin with the highest ranking, or null. */
  private ServiceReference<?> admin() {
    ServiceReference<?>[] refs;
    try {
      refs = context.getAllServiceReferences(ADMIN, null);
    } catch (InvalidSyntaxException never) {
      return null;
    }
    if (refs == null) return null;
    ServiceReference<?> best = null;
    for (ServiceReference<?> ref : refs) if (best == null || ref.compareTo(best) > 0) best = ref;
    return best;
  }

  /** Creates or updates the Configuration; false when it already had exactly these properties. */
  private boolean update(ServiceReference<?> ref, String pid, Hashtable<String, Object> values) throws Exception {
    Bundle owner = ref.getBundle();
    Object admin = context.getService(ref);
    if (owner == null || admin == null) throw new IllegalStateException("Configuration Admin went away");
    try {
      Class<?> api = owner.loadClass(ADMIN);
      Class<?> configurationApi = owner.loadClass(CONFIGURATION);
      int tilde = pid.indexOf('~');
      Object configuration;
      if (tilde > 0) {
        Method factory;
        try {
          factory = api.getMethod("getFactoryConfiguration", String.class, String.class, String.class);
        } catch (NoSuchMethodException old) {
          throw new IllegalStateException("named factory configuration " + pid + " needs Configuration Admin 1.6");
        }
        configuration = invoke(factory, admin, pid.substring(0, tilde), pid.substring(tilde + 1), "?");
      } else {
        configuration = invoke(api.getMethod("getConfiguration", String.class, String.class), admin, pid, "?");
      }
      Hashtable<String, Object> copy = new Hashtable<>(values);
      try {
        return (Boolean) invoke(configurationApi.getMethod("updateIfDifferent", Dictionary.class), configuration, copy);
      } catch (NoSuchMethodException before16) {
        invoke(configurationApi.getMethod("update", Dictionary.class), configuration, copy);
        return true;
      }
    } finally {
      context.ungetService(ref);
    }
  }

  /** Deletes PID's Configuration; false when there was none. */
  private boolean delete(ServiceReference<?> ref, String pid) throws Exception {
    Bundle owner = ref.getBundle();
    Object admin = context.getService(ref);
    if (owner == null || admin == null) throw new IllegalStateException("Configuration Admin went away");
    try {
      Class<?> api = owner.loadClass(ADMIN);
      Class<?> configurationApi = owner.loadClass(CONFIGURATION);
      Object[] found = (Object[]) invoke(api.getMethod("listConfigurations", String.class), admin,
          "(service.pid=" + escape(pid) + ")");
      if (found == null) return false;
      for (Object configuration : found) invoke(configurationApi.getMethod("delete"), configuration);
      return found.length > 0;
    } finally {
      context.ungetService(ref);
    }
  }

  private static Object invoke(Method method, Object target, Object... args) throws Exception {
    try {
      return method.invoke(target, args);
    } catch (InvocationTargetException thrown) {
      Throwable cause = thrown.getCause();
      if (cause instanceof Exception) throw (Exception) cause;
      throw thrown;
    }
  }

  // --- properties ---------------------------------------------------------------------

  /**
   * JSON → Configuration Admin types: strings, booleans, integers (Integer, or
   * Long beyond its range), other numbers (Double), and arrays of one of these
   * (String[], Boolean[], Integer[]/Long[], Double[]). null leaves the key out.
   */
  static Hashtable<String, Object> toProperties(String pid, Object json) {
    if (!(json instanceof Map)) throw new IllegalArgumentException("the properties of PID " + pid + " are not a JSON object");
    Hashtable<String, Object> out = new Hashtable<>();
    Set<String> seen = new HashSet<>();
    for (Map.Entry<?, ?> entry : ((Map<?, ?>) json).entrySet()) {
      String key = (String) entry.getKey();
      String folded = key.toLowerCase(Locale.ROOT);
      if (key.isEmpty()) throw new IllegalArgumentException("PID " + pid + " has an empty property name");
      if (RESERVED.contains(folded)) throw new IllegalArgumentException("PID " + pid + " may not set " + key + " (Configuration Admin sets it)");
      // Configuration Admin's keys are case-insensitive.
      if (!seen.add(folded)) throw new IllegalArgumentException("PID " + pid + " has " + key + " twice (property names ignore case)");
      Object value = entry.getValue();
      if (value != null) out.put(key, convert(pid, key, value));
    }
    return out;
  }

  private static Object convert(String pid, String key, Object value) {
    if (value instanceof String || value instanceof Boolean || value instanceof Double) return value;
    if (value instanceof Long) return narrow((Long) value);
    if (value instanceof List) {
      List<?> items = (List<?>) value;
      if (items.isEmpty() || items.stream().allMatch(v -> v instanceof String)) return items.toArray(new String[0]);
      if (items.stream().allMatch(v -> v instanceof Boolean)) return items.toArray(new Boolean[0]);
      if (items.stream().allMatch(v -> v instanceof Long)) {
        boolean small = items.stream().allMatch(v -> narrow((Long) v) instanceof Integer);
        return small ? items.stream().map(v -> ((Long) v).intValue()).toArray(Integer[]::new) : items.toArray(new Long[0]);
      }
      if (items.stream().allMatch(v -> v instanceof Long || v instanceof Double))
        return items.stream().map(v -> ((Number) v).doubleValue()).toArray(Double[]::new);
    }
    throw new IllegalArgumentException("property " + key + " of PID " + pid
        + " is not a string, number, boolean or array of one of these (Configuration Admin holds no nested objects)");
  }

  private static Object narrow(Long value) {
    return value >= Integer.MIN_VALUE && value <= Integer.MAX_VALUE ? (Object) value.intValue() : value;
  }

  private static Hashtable<String, Object> withPid(String pid, Hashtable<String, Object> values) {
    if (values == null) return null;
    Hashtable<String, Object> copy = new Hashtable<>(values);
    copy.put(Constants.SERVICE_PID, pid);
    int tilde = pid.indexOf('~');
    if (tilde > 0) copy.put("service.factoryPid", pid.substring(0, tilde));
    return copy;
  }

  private static Collection<String> pidsOf(ServiceReference<?> ref) {
    Object value = ref.getProperty(Constants.SERVICE_PID);
    List<String> pids = new ArrayList<>();
    if (value instanceof String) pids.add((String) value);
    else if (value instanceof String[]) pids.addAll(Arrays.asList((String[]) value));
    else if (value instanceof Collection) for (Object v : (Collection<?>) value) pids.add(String.valueOf(v));
    return pids;
  }

  private static void checkPid(String pid) {
    if (pid.isEmpty() || pid.startsWith("~") || pid.endsWith("~"))
      throw new IllegalArgumentException("bad PID \"" + pid + "\"");
  }

  /** An LDAP filter value: \ * ( ) escaped. */
  private static String escape(String value) {
    return value.replace("\\", "\\\\").replace("*", "\\*").replace("(", "\\(").replace(")", "\\)");
  }

  private static void warn(String what, Throwable error) {
    System.err.println("shoal management agent: " + what + ": " + error);
  }
}
