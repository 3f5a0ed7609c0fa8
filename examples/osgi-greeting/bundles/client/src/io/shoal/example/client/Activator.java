package io.shoal.example.client;

import io.shoal.example.greeting.Greeter;
import java.util.Hashtable;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.osgi.framework.BundleActivator;
import org.osgi.framework.BundleContext;
import org.osgi.framework.BundleException;
import org.osgi.framework.ServiceReference;

/**
 * Uses the Greeter service (it starts after the greeter: a higher start level) and
 * publishes what it said as a service property "greeting", for people and tests to read.
 */
public final class Activator implements BundleActivator {
  @Override
  public void start(BundleContext context) throws BundleException {
    ServiceReference<Greeter> ref = context.getServiceReference(Greeter.class);
    if (ref == null) throw new BundleException("no Greeter service is registered");
    Greeter greeter = context.getService(ref);
    Hashtable<String, Object> properties = new Hashtable<>();
    properties.put("greeting", greeter.greet(audience()));
    context.registerService(Runnable.class, () -> {}, properties);
  }

  @Override
  public void stop(BundleContext context) {}

  /** "audience" from the distribution's configuration (Shoal sets System property shoal.config). */
  private static String audience() {
    Matcher m = Pattern.compile("\"audience\"\\s*:\\s*\"([^\"]*)\"").matcher(System.getProperty("shoal.config", "{}"));
    return m.find() ? m.group(1) : "world";
  }
}
