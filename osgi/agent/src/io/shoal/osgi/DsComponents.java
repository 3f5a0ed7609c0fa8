package io.shoal.osgi;

import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import org.osgi.framework.Bundle;
import org.osgi.framework.BundleContext;
import org.osgi.framework.ServiceReference;

/**
 * Declarative Services components as every ServiceComponentRuntime in the
 * framework reports them (usually one: Felix SCR, a platform bundle).
 *
 * The DS API is called reflectively, through the classes of the bundle that
 * registered the runtime: the agent's optional imports of the DS packages may be
 * unwired (no SCR when the agent resolved, or a distribution that brings its own
 * SCR), and the agent must still start and answer. No SCR: an empty list.
 */
final class DsComponents {
  static final String RUNTIME = "org.osgi.service.component.runtime.ServiceComponentRuntime";
  private static final String DESCRIPTION = "org.osgi.service.component.runtime.dto.ComponentDescriptionDTO";

  // ComponentConfigurationDTO states (DS 1.3; FAILED_ACTIVATION and UNSATISFIED_CONFIGURATION since 1.4).
  private static final int UNSATISFIED_CONFIGURATION = 1;
  private static final int UNSATISFIED_REFERENCE = 2;
  private static final int SATISFIED = 4;
  private static final int ACTIVE = 8;
  private static final int FAILED_ACTIVATION = 16;

  private DsComponents() {}

  /**
   * One JSON object per component description: name, bundle, symbolicName,
   * state, enabled, configurations (how many), configurationPolicy,
   * configurationPid, unsatisfied references (name, interface, target), failure.
   */
  static String list(BundleContext context) throws Exception {
    ServiceReference<?>[] runtimes = context.getAllServiceReferences(RUNTIME, null);
    List<String> items = new ArrayList<>();
    if (runtimes == null) return "[]";
    for (ServiceReference<?> ref : runtimes) {
      Object runtime = context.getService(ref);
      if (runtime == null) continue;
      try {
        Bundle owner = ref.getBundle();
        if (owner == null) continue;
        Class<?> api = owner.loadClass(RUNTIME);
        Class<?> descriptionClass = owner.loadClass(DESCRIPTION);
        Method descriptions = api.getMethod("getComponentDescriptionDTOs", Bundle[].class);
        Method configurations = api.getMethod("getComponentConfigurationDTOs", descriptionClass);
        Method enabled = api.getMethod("isComponentEnabled", descriptionClass);
        for (Object description : (Collection<?>) descriptions.invoke(runtime, (Object) new Bundle[0]))
          items.add(component(description, (Collection<?>) configurations.invoke(runtime, description),
              Boolean.TRUE.equals(enabled.invoke(runtime, description))));
      } finally {
        context.ungetService(ref);
      }
    }
    return "[" + String.join(",", items) + "]";
  }

  private static String component(Object description, Collection<?> configurations, boolean enabled) {
    Object bundle = field(description, "bundle");
    String policy = (String) field(description, "configurationPolicy");
    Object[] references = array(field(description, "references"));
    // A component with several configurations (factory configurations) shows its worst one.
    int state = 0;
    String failure = null;
    List<String> unsatisfied = new ArrayList<>();
    for (Object configuration : configurations) {
      int s = ((Number) field(configuration, "state")).intValue();
      if (state == 0 || rank(s) < rank(state)) state = s;
      Object text = field(configuration, "failure");
      if (text != null && failure == null) failure = (String) text;
      for (Object missing : array(field(configuration, "unsatisfiedReferences"))) {
        String name = (String) field(missing, "name");
        String item = "{\"name\":" + ManagementAgent.quote(name)
            + ",\"interface\":" + ManagementAgent.quote(interfaceOf(references, name))
            + ",\"target\":" + ManagementAgent.quote((String) field(missing, "target")) + "}";
        if (!unsatisfied.contains(item)) unsatisfied.add(item);
      }
    }
    String name;
    if (!enabled) name = "disabled";
    else if (configurations.isEmpty())
      // SCR lists no configuration while a required one is missing (and for a factory component before newInstance).
      name = "require".equals(policy) ? "unsatisfied-configuration" : "satisfied";
    else name = stateName(state);
    List<String> pids = new ArrayList<>();
    for (Object pid : array(field(description, "configurationPid"))) pids.add(ManagementAgent.quote((String) pid));
    return "{\"name\":" + ManagementAgent.quote((String) field(description, "name"))
        + ",\"bundle\":" + (bundle == null ? "null" : field(bundle, "id"))
        + ",\"symbolicName\":" + ManagementAgent.quote(bundle == null ? null : (String) field(bundle, "symbolicName"))
        + ",\"state\":" + ManagementAgent.quote(name)
        + ",\"enabled\":" + enabled
        + ",\"configurations\":" + configurations.size()
        + ",\"configurationPolicy\":" + ManagementAgent.quote(policy)
        + ",\"configurationPid\":[" + String.join(",", pids) + "]"
        + ",\"unsatisfied\":[" + String.join(",", unsatisfied) + "]"
        + ",\"failure\":" + ManagementAgent.quote(failure) + "}";
  }

  /** Lower is worse: the state a component with several configurations shows. */
  private static int rank(int state) {
    switch (state) {
      case FAILED_ACTIVATION: return 0;
      case UNSATISFIED_REFERENCE: return 1;
      case UNSATISFIED_CONFIGURATION: return 2;
      case SATISFIED: return 3;
      case ACTIVE: return 4;
      default: return 5;
    }
  }

  private static String stateName(int state) {
    switch (state) {
      case UNSATISFIED_CONFIGURATION: return "unsatisfied-configuration";
      case UNSATISFIED_REFERENCE: return "unsatisfied-reference";
      case SATISFIED: return "satisfied";
      case ACTIVE: return "active";
      case FAILED_ACTIVATION: return "failed-activation";
      default: return "unknown";
    }
  }

  private static String interfaceOf(Object[] references, String name) {
    for (Object reference : references)
      if (name != null && name.equals(field(reference, "name"))) return (String) field(reference, "interfaceName");
    return null;
  }

  /** A public DTO field, or null when this DS version has no such field. */
  private static Object field(Object dto, String name) {
    if (dto == null) return null;
    try {
      Field field = dto.getClass().getField(name);
      return field.get(dto);
    } catch (NoSuchFieldException | IllegalAccessException absent) {
      return null;
    }
  }

  private static Object[] array(Object value) {
    return value instanceof Object[] ? (Object[]) value : new Object[0];
  }
}
