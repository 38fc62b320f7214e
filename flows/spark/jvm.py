"""The Spark JVMs' own options: a module without PySpark, so the Kubernetes conf can name them."""

# The JIT compiles generated methods of any size. By default HotSpot never compiles a method over 8,000
# bytes of bytecode (`DontCompileHugeMethods`): Spark's generated code for the PNAD typing (hundreds of
# expressions) has such methods, and they ran interpreted, the step's hottest loop at a fraction of its
# compiled speed. Driver and executors alike (in local mode the driver runs the tasks).
JVM_OPTIONS = "-XX:-DontCompileHugeMethods"
