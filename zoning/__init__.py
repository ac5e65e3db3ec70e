"""belcheer.zoning — parcels, zonal statistics, pasture condition, carrying capacity,
management zones, change and roll-ups: where a map becomes a decision for a soum land office."""

from belcheer.zoning.biomass import (
                                     BiomassModel,
                                     biomass_raster,
                                     calibrate_biomass,
                                     calibrate_survey,
                                     load_model,
                                     read_samples,
)
from belcheer.zoning.capacity import CapacityParams, capacity_table, carrying_capacity, sheep_units
from belcheer.zoning.change import ChangeResult, change, parcel_change
from belcheer.zoning.condition import (
                                     CLASS_NAMES,
                                     bare_ground_class,
                                     class_label,
                                     combine_classes,
                                     condition_class,
                                     condition_raster,
                                     load_bare_thresholds,
                                     load_thresholds,
)
from belcheer.zoning.cover import COVER_CLASSES, cover_raster, cover_rollup, parcel_cover
from belcheer.zoning.landcover import (
                                     LANDCOVER_CLASSES,
                                     accuracy_table,
                                     classify_landcover,
                                     landcover_raster,
)
from belcheer.zoning.parcels import (
                                     ParcelImport,
                                     import_parcels,
                                     load_parcels,
                                     normalise_parcels,
                                     parcel_columns,
                                     query_parcels,
                                     read_parcels,
                                     save_parcels,
)
from belcheer.zoning.pdf import render_soum_report, write_soum_report
from belcheer.zoning.registry import find_soum, read_livestock
from belcheer.zoning.report import parcel_report
from belcheer.zoning.rollup import assign_units, rollup
from belcheer.zoning.stats import DEFAULT_STATS, survey_stats, zonal_stats
from belcheer.zoning.zones import export_prescription, management_zones, parcel_zones, zone_polygons

__all__ = [
    "BiomassModel", "CLASS_NAMES", "COVER_CLASSES", "CapacityParams", "ChangeResult", "DEFAULT_STATS", "LANDCOVER_CLASSES",
    "ParcelImport", "accuracy_table", "assign_units", "biomass_raster", "calibrate_biomass", "calibrate_survey",
    "capacity_table", "carrying_capacity", "change", "class_label", "classify_landcover",
    "bare_ground_class", "combine_classes", "load_bare_thresholds",
    "condition_class", "condition_raster", "cover_raster", "cover_rollup", "export_prescription", "import_parcels", "landcover_raster", "landcover_raster", "load_model",
    "load_parcels", "load_thresholds", "management_zones", "normalise_parcels", "parcel_change",
    "parcel_columns", "parcel_cover", "parcel_report", "parcel_zones", "query_parcels", "read_livestock", "find_soum", "read_parcels",
    "read_samples", "render_soum_report", "rollup", "save_parcels", "sheep_units", "survey_stats",
    "write_soum_report", "zonal_stats", "zone_polygons",
]
