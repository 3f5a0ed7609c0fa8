package educa.catalog;

import educa.api.Catalog;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * DS component "educa.catalog" (OSGI-INF/educa.catalog.xml): provides {@link Catalog}.
 * Configuration PID "educa.catalog", policy optional: it runs without one, and a
 * change calls {@link #modified} (no reactivation, so the web component that
 * uses it is not restarted).
 *
 * <p>Configuration properties: "language" (default "en"), reported on every course.
 */
public class CatalogComponent implements Catalog {
  private volatile List<Map<String, Object>> courses = Collections.emptyList();

  /** Called by SCR with the component properties (the configuration's, when there is one). */
  public void activate(Map<String, Object> properties) {
    configure(properties);
    System.out.println("educa.catalog " + Release.VERSION + " active: " + courses.size() + " courses");
  }

  public void modified(Map<String, Object> properties) {
    configure(properties);
    System.out.println("educa.catalog " + Release.VERSION + " configuration updated");
  }

  public void deactivate() {
    System.out.println("educa.catalog " + Release.VERSION + " deactivated");
  }

  private void configure(Map<String, Object> properties) {
    Object configured = properties.get("language");
    String language = configured == null ? "en" : String.valueOf(configured);
    List<Map<String, Object>> list = new ArrayList<>();
    list.add(course("p2p-101", "Peer-to-peer networks", "beginner", language));
    list.add(course("gossip", "Gossip protocols", "intermediate", language));
    list.add(course("swim", "Failure detection with SWIM", "advanced", language));
    // 1.1 adds a level on each course and one more course, like the Node.js Educa.
    if (Release.LEVELS) list.add(course("rollouts", "Rolling upgrades", "intermediate", language));
    courses = Collections.unmodifiableList(list);
  }

  private static Map<String, Object> course(String id, String title, String level, String language) {
    Map<String, Object> course = new LinkedHashMap<>();
    course.put("id", id);
    course.put("title", title);
    if (Release.LEVELS) course.put("level", level);
    course.put("language", language);
    return Collections.unmodifiableMap(course);
  }

  @Override
  public List<Map<String, Object>> courses() {
    return courses;
  }

  @Override
  public String version() {
    return Release.VERSION;
  }
}
