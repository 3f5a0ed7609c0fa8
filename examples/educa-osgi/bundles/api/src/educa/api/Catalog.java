package educa.api;

import java.util.List;
import java.util.Map;

/**
 * The course catalog, as an OSGi service: the educa.catalog bundle provides it
 * (DS component "educa.catalog"), the educa.web bundle uses it.
 *
 * <p>This package is exported by the educa.api bundle alone, so a new catalog or
 * web bundle can replace the old one while every bundle keeps wiring to the same
 * interface.
 */
public interface Catalog {
  /**
   * The courses, in display order. Each one is a map of plain JSON values
   * (String, Number, Boolean, List, Map): "id" and "title" always; 1.1 adds "level".
   */
  List<Map<String, Object>> courses();

  /** The version of the catalog implementation, e.g. "1.1". */
  String version();
}
