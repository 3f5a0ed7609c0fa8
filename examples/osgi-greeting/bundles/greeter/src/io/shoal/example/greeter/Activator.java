package io.shoal.example.greeter;

import io.shoal.example.greeting.Greeter;
import java.util.Hashtable;
import org.osgi.framework.BundleActivator;
import org.osgi.framework.BundleContext;

/** Registers a Greeter whose words come from the build (GREETING, "Hello" in 1.0, "Hi" in 1.1). */
public final class Activator implements BundleActivator {
  @Override
  public void start(BundleContext context) {
    String version = context.getBundle().getVersion().toString();
    Hashtable<String, Object> properties = new Hashtable<>();
    properties.put("greeter.version", version);
    context.registerService(Greeter.class, audience -> Words.GREETING + ", " + audience + " (greeter " + version + ")", properties);
  }

  @Override
  public void stop(BundleContext context) {}
}
