"""Daily stock bars from CSV files or an HTTP source, validated and written as InfluxDB points."""
