"""The Spark JVMs' own options: a module without PySpark, so the Kubernetes conf can name them."""

# The JIT compiles generated methods of any size. By default HotSpot never compiles a method over 8,000
# bytes of bytecode (`DontCompileHugeMethods`): Spark's generated code for the PNAD typing (hundreds of
# expressions) has such methods, and they ran interpreted, the step's hottest loop at a fraction of its
# compiled speed. Driver and executors alike (in local mode the driver runs the tasks).
# The throughput collector: a step is a batch job, and G1 (the JVM's choice with two cores or more) ran its
# concurrent threads beside the tasks and the JIT on the two cores here. Side by side on the
# 400,000-document lake the PNAD step's first run took 19.1–21.7 s with it and 24.9–26.1 s with G1. (A
# one-core executor pod got the serial collector before; Parallel there is not measured.)
# Less inlining by the JIT's C2 compiler (JDK 17's defaults: FreqInlineSize 325 bytes, InlineSmallCode 2500,
# MaxInlineLevel 15). A step's JVM is cold, and on two cores the JIT's compiler threads took about half of
# its CPU, compiling thousands of Spark's methods (docs/spark-performance.md, "Where a local run's CPU
# goes"); what C2 inlines is most of what each compilation costs. With these limits, `vamosjuntos run`
# (ephemeral, 368,210 documents, five pairs in turn): the JVM's CPU 31.3-32.3 s instead of 38.8-41.3 s,
# its compiler threads 12.4-13.1 s instead of 18.2-19.4 s, its tasks no slower (10.7-11.0 s against
# 12.1-13.4 s), the run 35.2 s instead of 37.3 s (median; faster in every pair). At 2,000,000 documents,
# where compiled code runs longest, two pairs: the JVM 73.8-74.9 s against 80.6-90.2 s, the tasks 42.7-43.7
# s against 39.7-47.1 s. Tighter limits took less compiling but slowed the tasks more than that saved.
INLINING = "-XX:MaxInlineLevel=6 -XX:FreqInlineSize=100 -XX:InlineSmallCode=1000"
JVM_OPTIONS = f"-XX:-DontCompileHugeMethods -XX:+UseParallelGC {INLINING}"

# The local JVM only (Python driver, Spark JVM and the embedded MongoDB share the machine): a young
# generation of a fixed 128 MB, for memory. The throughput collector otherwise grows it towards a third of
# the heap and keeps what it grew. The old generation gets the rest of the heap (`spark_driver_memory`;
# Spark refuses a driver below ~450 MB of usable heap, so the old generation is larger than before). Side by
# side, the three Spark steps in one JVM (ibge, pnadc, consumer; in turn): the JVM peaked at 1,052-1,110 MB
# instead of 1,406-1,517 MB at 400,000 documents (four rounds), at 1,835-1,929 MB instead of 2,405-2,455 MB
# at 2,000,000 (two rounds). The price is garbage collection, most likely because the cached typed PNAD
# frame is built in batches that outlive more, smaller collections (not profiled): the benchmark
# (docs/benchmarks.md, "What Spark recorded") counted 1.7x-3x the PNAD step's GC time; at 368,210 the step
# was no slower (its executor time fell), from 1,000,000 up the GC added ~15% to its executor time. Pods are
# sized by their requests, not by what the JVM grows to: their options are unchanged.
LOCAL_JVM_OPTIONS = "-Xmn128m"
