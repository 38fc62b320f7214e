"""The Spark JVMs' own options: a module without PySpark, so the Kubernetes conf can name them."""

# The JIT compiles generated methods of any size. By default HotSpot never compiles a method over 8,000
# bytes of bytecode (`DontCompileHugeMethods`): Spark's generated code for the PNAD typing (hundreds of
# expressions) has such methods, and they ran interpreted, the step's hottest loop at a fraction of its
# compiled speed. Driver and executors alike (in local mode the driver runs the tasks).
# The throughput collector: a step is a batch job, and G1 (the JVM's choice with two cores or more) ran its
# concurrent threads beside the tasks and the JIT on the two cores here. Side by side on the
# 400,000-document lake the PNAD step's first run took 19.1–21.7 s with it and 24.9–26.1 s with G1. (A
# one-core executor pod got the serial collector before; Parallel there is not measured.)
JVM_OPTIONS = "-XX:-DontCompileHugeMethods -XX:+UseParallelGC"

# The local JVM only (Python driver, Spark JVM and the embedded MongoDB share the machine): a young
# generation of a fixed 128 MB, for memory. The throughput collector otherwise grows it towards a third of
# the heap and keeps what it grew. The old generation gets the rest of the heap (`spark_driver_memory`;
# Spark refuses a driver below ~450 MB of usable heap, so the old generation is larger than before). Side by
# side, the three Spark steps in one JVM (ibge, pnadc, consumer; in turn): the JVM peaked at 1,052-1,110 MB
# instead of 1,406-1,517 MB at 400,000 documents (four rounds), at 1,835-1,929 MB instead of 2,405-2,455 MB
# at 2,000,000 (two rounds). The price was garbage collection, most likely because the cached typed PNAD
# frame is built in batches that outlive more, smaller collections (not profiled; measured while the step
# cached its records on every batch, which it now does only to check duplicates): the benchmark
# (docs/benchmarks.md, "What Spark recorded") counted 1.7x-3x the PNAD step's GC time; at 368,210 the step
# was no slower (its executor time fell), from 1,000,000 up the GC added ~15% to its executor time. Pods are
# sized by their requests, not by what the JVM grows to: their options are unchanged.
#
# Less inlining by the JIT's C2 compiler (JDK 17's defaults: FreqInlineSize 325 bytes, InlineSmallCode 2500,
# MaxInlineLevel 15). A local run's JVM is cold, and on two cores its compiler threads took about half of its
# CPU, compiling thousands of Spark's methods (docs/spark-performance.md, "Where a local run's CPU goes");
# what C2 inlines is most of what each compilation costs. Side by side, `vamosjuntos run` (ephemeral,
# 368,210 documents), three rounds: the run faster in 10 of 11 pairs; in the last and largest round (five
# pairs) the JVM's CPU 31.3-32.3 s instead of 38.8-41.3 s, its compiler threads 12.4-13.1 s instead of
# 18.2-19.4 s, its tasks' CPU no higher. At 2,000,000 documents, two pairs: the JVM 73.8-74.9 s against
# 80.6-90.2 s. Measured on local runs only: the pods (flows/spark/kubernetes/spark_conf.py) keep Java's
# defaults until they are measured on a cluster.
INLINING = "-XX:MaxInlineLevel=6 -XX:FreqInlineSize=100 -XX:InlineSmallCode=1000"
LOCAL_JVM_OPTIONS = f"-Xmn128m {INLINING}"
