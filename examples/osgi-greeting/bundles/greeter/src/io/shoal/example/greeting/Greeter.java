package io.shoal.example.greeting;

/** The service the greeter bundle provides and the client bundle uses. */
public interface Greeter {
  String greet(String audience);
}
