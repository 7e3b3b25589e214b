from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from app.models.emails import Audience
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('encore', '0005_room')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Account',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(max_length=200)),
                ('domains', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('notes', fields.TextField(default='', unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'account', 'app': 'encore', 'pk_attr': 'id', 'table_description': 'A customer company: the people whose addresses end in its domains.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Attendance',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('webinar_id', fields.IntField(db_index=True)),
                ('session_id', fields.IntField()),
                ('registrant_id', fields.IntField(db_index=True)),
                ('contact_id', fields.IntField(db_index=True)),
                ('first_join_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('last_seen_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('watched_seconds', fields.FloatField(default=0.0)),
                ('furthest_seconds', fields.FloatField(default=0.0)),
                ('minutes', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('stayed_to_end', fields.BooleanField(default=False)),
                ('clicked_offer', fields.BooleanField(default=False)),
                ('chat_messages', fields.IntField(default=0)),
                ('responses', fields.IntField(default=0)),
                ('downloads', fields.IntField(default=0)),
                ('clicked', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
            ],
            options={'table': 'attendance', 'app': 'encore', 'unique_together': (('session_id', 'registrant_id'),), 'pk_attr': 'id', 'table_description': 'What one registrant did in one session, kept up to date as their events arrive.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='DailyVisitor',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('webinar_id', fields.IntField()),
                ('day', fields.DateField()),
                ('visitor', fields.BigIntField()),
            ],
            options={'table': 'daily_visitor', 'app': 'encore', 'unique_together': (('webinar_id', 'day', 'visitor'),), 'pk_attr': 'id', 'table_description': 'One landing-page visitor (the random id of their cookie) on one UTC day, per webinar.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Segment',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(max_length=200)),
                ('rules', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_by', fields.ForeignKeyField('encore.StaffUser', source_field='created_by_id', null=True, db_constraint=True, to_field='id', related_name='segments', on_delete=OnDelete.SET_NULL)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'segment', 'app': 'encore', 'pk_attr': 'id', 'table_description': 'A saved filter over contacts (its rules are JSON, read by app.services.segments).'},
            bases=['Model'],
        ),
        ops.AlterField(
            model_name='AnalyticsEvent',
            name='kind',
            field=fields.CharField(max_length=32),
        ),
        ops.AlterField(
            model_name='AnalyticsEvent',
            name='registrant_id',
            field=fields.IntField(null=True),
        ),
        ops.AlterField(
            model_name='AnalyticsEvent',
            name='session_id',
            field=fields.IntField(null=True),
        ),
        ops.AlterField(
            model_name='AnalyticsEvent',
            name='webinar_id',
            field=fields.IntField(null=True),
        ),
        # SQLite alters a column by copying the table, and the copy has no indexes: the two
        # single-column indexes the fields still declare are made again (a no-op elsewhere).
        ops.RunSQL(
            [
                'CREATE INDEX IF NOT EXISTS "idx_analytics_e_at_3d6b89" ON "analytics_event" ("at")',
                'CREATE INDEX IF NOT EXISTS "idx_analytics_e_contact_1c480f" ON "analytics_event" ("contact_id")',
            ],
            reverse_sql=[],
        ),
        ops.AddIndex(
            model_name='AnalyticsEvent',
            index=Index(fields=['session_id', 'at']),
        ),
        ops.AddIndex(
            model_name='AnalyticsEvent',
            index=Index(fields=['registrant_id', 'session_id', 'at']),
        ),
        ops.AddIndex(
            model_name='AnalyticsEvent',
            index=Index(fields=['webinar_id', 'kind']),
        ),
        ops.AddIndex(
            model_name='ChatMessage',
            index=Index(fields=['session_id', 'registrant_id']),
        ),
        ops.AlterField(
            model_name='EmailStep',
            name='audience',
            field=fields.CharEnumField(default=Audience.EVERYONE, description='EVERYONE: everyone\nATTENDED: attended\nLEFT_EARLY: left_early\nMISSED: missed\nCLICKED_OFFER: clicked_offer\nSEGMENT: segment', enum_type=Audience, max_length=16),
        ),
        ops.AddField(
            model_name='EmailStep',
            name='segment',
            field=fields.ForeignKeyField('encore.Segment', source_field='segment_id', null=True, db_constraint=True, to_field='id', related_name='email_steps', on_delete=OnDelete.SET_NULL),
        ),
        ops.AddIndex(
            model_name='Registrant',
            index=Index(fields=['webinar_id', 'session_id']),
        ),
    ]
